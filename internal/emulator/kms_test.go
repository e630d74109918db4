package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestKMS checks the KMS calls the envelope encryption relies on, with the
// real SDK client: GenerateDataKey and Decrypt under an encryption context,
// and Decrypt failing under another context.
func TestKMS(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client := kms.NewFromConfig(emulatortest.Shared(t, emulator.Moto).AWSConfig())

	key, err := client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("ksse emulator test")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	keyID := aws.ToString(key.KeyMetadata.KeyId)
	keyARN := aws.ToString(key.KeyMetadata.Arn)
	t.Logf("key %s (%s)", keyID, keyARN)

	ec := map[string]string{"stream": "orders", "purpose": "ksse"}
	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(keyARN),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: ec,
	})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	if len(dk.Plaintext) != 32 || len(dk.CiphertextBlob) == 0 {
		t.Fatalf("GenerateDataKey: %d-byte plaintext, %d-byte ciphertext", len(dk.Plaintext), len(dk.CiphertextBlob))
	}
	if aws.ToString(dk.KeyId) != keyARN {
		t.Logf("note: GenerateDataKey KeyId = %q (key ARN %q)", aws.ToString(dk.KeyId), keyARN)
	}

	// Decrypt with the same context (in another map order) gives the key
	// back; the KeyId may be omitted for symmetric keys.
	for _, keyID := range []*string{nil, aws.String(keyID)} {
		out, err := client.Decrypt(ctx, &kms.DecryptInput{
			CiphertextBlob:    dk.CiphertextBlob,
			EncryptionContext: map[string]string{"purpose": "ksse", "stream": "orders"},
			KeyId:             keyID,
		})
		if err != nil {
			t.Fatalf("Decrypt (KeyId %v): %v", aws.ToString(keyID), err)
		}
		if !bytes.Equal(out.Plaintext, dk.Plaintext) {
			t.Fatalf("Decrypt gave another key")
		}
		if aws.ToString(out.KeyId) != keyARN {
			t.Errorf("Decrypt KeyId = %q, want %q", aws.ToString(out.KeyId), keyARN)
		}
	}

	for name, wrong := range map[string]map[string]string{
		"other value":   {"stream": "payments", "purpose": "ksse"},
		"missing entry": {"stream": "orders"},
		"extra entry":   {"stream": "orders", "purpose": "ksse", "x": "y"},
		"none":          nil,
	} {
		_, err := client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: wrong})
		var ice *types.InvalidCiphertextException
		if !errors.As(err, &ice) {
			t.Errorf("Decrypt with wrong context (%s): err = %v, want InvalidCiphertextException", name, err)
		}
	}
}
