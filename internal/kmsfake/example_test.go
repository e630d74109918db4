package kmsfake_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
)

// A Server lets a test use a real *kms.Client, with its signing, error
// parsing and retries.
func ExampleServer() {
	ctx := context.Background()
	k := kmsfake.New()
	keyID, _ := k.CreateKey("")
	if err := k.CreateAlias("alias/orders", keyID); err != nil {
		panic(err)
	}
	srv := kmsfake.NewServer(k)
	defer srv.Close()
	client := srv.Client(func(o *kms.Options) { o.Retryer = aws.NopRetryer{} })

	dk, err := client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/orders"), NumberOfBytes: aws.Int32(32)})
	if err != nil {
		panic(err)
	}
	fmt.Println("data key bytes:", len(dk.Plaintext))

	if err := k.SetKeyState(keyID, types.KeyStateDisabled); err != nil {
		panic(err)
	}
	_, err = client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
	var disabled *types.DisabledException
	fmt.Println("typed:", errors.As(err, &disabled))
	fmt.Println("class:", kmsiface.ClassOf(err))
	// Output:
	// data key bytes: 32
	// typed: true
	// class: kmsiface: key disabled or not in a usable state
}

// Faults test how code copes with KMS failures. Here the SDK's retryer
// (without its backoff, to keep the example fast) rides out a throttle and
// an HTTP 503, and then gives up on three 503s in a row.
func ExampleKMS_InjectFault() {
	ctx := context.Background()
	k := kmsfake.New()
	_, keyARN := k.CreateKey("")
	srv := kmsfake.NewServer(k)
	defer srv.Close()
	client := srv.Client(func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	in := &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256}

	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException", Message: "Rate exceeded"}, 1)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 503}, 1)
	_, err := client.GenerateDataKey(ctx, in)
	fmt.Println("error:", err, "calls:", k.Calls("GenerateDataKey"))

	k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 503}, 3)
	_, err = client.GenerateDataKey(ctx, in)
	fmt.Println("gave up:", err != nil, "calls:", k.Calls("GenerateDataKey"))

	// In process, a fault is returned as the SDK would return it.
	k.InjectFault("", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, err = k.GenerateDataKey(ctx, in)
	fmt.Println("class:", kmsiface.ClassOf(err))
	// Output:
	// error: <nil> calls: 3
	// gave up: true calls: 6
	// class: kmsiface: throttled
}

// Latency makes the cryptographic operations slow, to test timeouts and
// caching; the ctx still ends a call.
func ExampleKMS_SetLatency() {
	k := kmsfake.New()
	_, keyARN := k.CreateKey("")
	k.SetLatency(time.Hour)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := k.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyARN), KeySpec: types.DataKeySpecAes256})
	fmt.Println(errors.Is(err, context.DeadlineExceeded))
	// Output:
	// true
}
