// Command lambda is an AWS Lambda function (github.com/aws/aws-lambda-go)
// that consumes a ksse-encrypted Kinesis stream. Its handler, in handler.go,
// is ordinary Kinesis handler code; ksselambda.Handler decrypts the records
// before it sees them and reports those that fail to decrypt as batch item
// failures.
//
// Build for the provided.al2023 runtime and deploy with an event source
// mapping on the stream, with FunctionResponseTypes ReportBatchItemFailures:
//
//	GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -o bootstrap ./examples/lambda
//
// Set the environment variable KSSE_KEY_ARN to the ARN of the KMS key the
// producers encrypt under: the function trusts records of that key only. Its
// role needs kms:Decrypt on that key, with the encryption context
// {"kinesis:stream": NAME}. The handler is tested in handler_test.go,
// without AWS.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ksse-go/ksse/ksselambda"
	"github.com/ksse-go/ksse/record"
)

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	// One Decryptor for the life of the execution environment: its cache
	// holds the unwrapped data keys between invocations.
	keyARN := os.Getenv("KSSE_KEY_ARN")
	if keyARN == "" {
		log.Fatal("KSSE_KEY_ARN is not set: the ARN of the KMS key whose records the function trusts")
	}
	dec, err := record.NewDecryptor(kms.NewFromConfig(cfg), func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{keyARN}
	})
	if err != nil {
		log.Fatal(err)
	}
	lambda.Start(ksselambda.Handler(dec, handle))
}
