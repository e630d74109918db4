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
// The function's role needs kms:Decrypt on the stream's KMS key, with the
// encryption context {"kinesis:stream": NAME}. The handler is tested in
// handler_test.go, without AWS.
package main

import (
	"context"
	"log"

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
	dec, err := record.NewDecryptor(kms.NewFromConfig(cfg))
	if err != nil {
		log.Fatal(err)
	}
	lambda.Start(ksselambda.Handler(dec, handle))
}
