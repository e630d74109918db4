package ksselambda_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/ksselambda"
	"github.com/ksse-go/ksse/record"
)

// Wrap a Kinesis handler: it sees plaintext records. A record that will
// never decrypt is rejected: taken out of the event and passed to OnReject
// (by default, logged), and the shard goes on. In a function's main:
// lambda.Start(ksselambda.Handler(dec, handle)), with a Decryptor on
// kms.NewFromConfig(cfg) that allows the stream's KMS key.
func ExampleHandler() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, _ := record.NewEncryptor(kmsClient, keyARN)
	defer enc.Close()
	dec, _ := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	defer dec.Close()

	handle := func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		for _, r := range ev.Records {
			fmt.Printf("handled %s: %s\n", r.Kinesis.PartitionKey, r.Kinesis.Data)
		}
		return events.KinesisEventResponse{}, nil
	}

	// An event as Lambda delivers it (built here for the example): two
	// encrypted records and one that was not encrypted, in one shard.
	stream := "arn:aws:kinesis:us-east-1:111122223333:stream/orders"
	var ev events.KinesisEvent
	for i, data := range []string{"order 1", "order 2", "order 3"} {
		r, _ := enc.Encrypt(ctx, stream, "customer-42", []byte(data))
		if i == 1 {
			r.Data = []byte("forged") // not an envelope
		}
		seq := fmt.Sprint(4959000 + i)
		ev.Records = append(ev.Records, events.KinesisEventRecord{
			EventID:        "shardId-000000000000:" + seq,
			EventSourceArn: stream,
			Kinesis:        events.KinesisRecord{Data: r.Data, PartitionKey: r.PartitionKey, SequenceNumber: seq},
		})
	}

	handler := ksselambda.Handler(dec, handle, func(o *ksselambda.Options) {
		o.OnReject = func(ctx context.Context, r events.KinesisEventRecord, err error) {
			fmt.Printf("rejected %s: %v\n", r.Kinesis.SequenceNumber, err)
		}
	})
	resp, err := handler(ctx, ev)
	if err != nil {
		panic(err)
	}
	fmt.Println("batch item failures:", resp.BatchItemFailures)
	// Output:
	// handled customer-42: order 1
	// handled customer-42: order 3
	// rejected 4959001: record: record is not encrypted
	// batch item failures: []
}
