package kmstest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/kmstest"
)

// A KMS is a kmsiface.Client in process: generate a data key and decrypt
// its wrapped form, as a producer and a consumer would.
func Example() {
	ctx := context.Background()
	k := kmstest.New()
	_, keyARN := k.CreateKey(types.KeySpecSymmetricDefault)
	var client kmsiface.Client = k

	ec := map[string]string{"aws:kinesis:arn": "arn:aws:kinesis:us-east-1:111122223333:stream/orders"}
	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(keyARN),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: ec,
	})
	if err != nil {
		panic(err)
	}
	out, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	if err != nil {
		panic(err)
	}
	fmt.Println("data key bytes:", len(dk.Plaintext))
	fmt.Println("decrypted:", bytes.Equal(out.Plaintext, dk.Plaintext))
	fmt.Println("same key:", *out.KeyId == keyARN)
	fmt.Println("GenerateDataKey calls:", k.Calls("GenerateDataKey"))

	// Without the encryption context the ciphertext does not decrypt.
	_, err = client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
	var invalid *types.InvalidCiphertextException
	fmt.Println("wrong context:", errors.As(err, &invalid))
	// Output:
	// data key bytes: 32
	// decrypted: true
	// same key: true
	// GenerateDataKey calls: 1
	// wrong context: true
}
