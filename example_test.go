package ksse_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse"
	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/record"
)

// One option on the client, and the application's Kinesis code reads and
// writes plaintext while the stream holds only envelopes. Here KMS and
// Kinesis are in memory (the test KMS, and the fake Kinesis of this
// package's tests); a program uses kms.NewFromConfig(cfg) and
// kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec)).
func ExampleWithEncryption() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, err := record.NewEncryptor(kmsClient, keyARN)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	if err != nil {
		panic(err)
	}
	defer dec.Close()

	fake := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(fake), ksse.WithEncryption(enc, dec))

	// The application's code, unchanged.
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String("orders"),
		Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("customer-42"), Data: []byte("order 1")},
			{PartitionKey: aws.String("customer-7"), Data: []byte("order 2")},
		},
	})
	if err != nil {
		panic(err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String("orders"),
		ShardId:           aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		panic(err)
	}
	out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		panic(err)
	}
	for _, r := range out.Records {
		fmt.Printf("read: %s %q (%s)\n", aws.ToString(r.PartitionKey), r.Data, r.EncryptionType)
	}

	// What the stream holds.
	for _, r := range fake.stored("orders") {
		fmt.Printf("stored: %s, envelope %v\n", r.PartitionKey, envelope.IsEnvelope(r.Data))
	}
	// Output:
	// read: customer-42 "order 1" (KMS)
	// read: customer-7 "order 2" (KMS)
	// stored: ksse, envelope true
	// stored: ksse, envelope true
}

// Without OnReject, a record that fails to decrypt makes GetRecords fail.
// The error carries the rest of the output, so a consumer may log the
// failed records and go on from the next iterator.
func ExampleGetRecordsError() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, _ := record.NewEncryptor(kmsClient, keyARN)
	defer enc.Close()
	dec, _ := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	defer dec.Close()

	fake := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(fake), ksse.WithEncryption(enc, dec))
	// Someone without the key writes a record in plaintext.
	plain := kinesis.New(fakeClientOptions(fake))
	for _, c := range []*kinesis.Client{client, plain, client} {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("hello"),
		})
		if err != nil {
			panic(err)
		}
	}

	it, _ := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String("orders"),
		ShardId:           aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	_, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	var gre *ksse.GetRecordsError
	if errors.As(err, &gre) {
		for _, f := range gre.Err.Failed {
			fmt.Printf("record %d (%s) failed: %v\n", f.Index, aws.ToString(gre.Output.Records[f.Index].SequenceNumber), f.Err)
		}
		for _, r := range gre.Output.Records {
			fmt.Printf("data: %q\n", r.Data)
		}
		fmt.Println("next iterator:", gre.Output.NextShardIterator != nil)
	}
	// Output:
	// record 1 (2) failed: record: record is not encrypted
	// data: "hello"
	// data: ""
	// data: "hello"
	// next iterator: true
}

// With OnReject, GetRecords reads on past records that will never decrypt:
// it takes them out of the output and reports them. The usual loop, which
// stops (or backs off and retries) on any error, needs no change. KeyARNs
// tells the KMS key of each record returned.
func ExampleOptions() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, _ := record.NewEncryptor(kmsClient, keyARN)
	defer enc.Close()
	dec, _ := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	defer dec.Close()

	fake := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(fake), ksse.WithEncryption(enc, dec, func(o *ksse.Options) {
		o.OnReject = func(ctx context.Context, r ksse.Rejected) {
			// Log where it is, never its content.
			fmt.Printf("rejected %s/%s: %v\n", r.Stream, aws.ToString(r.Record.SequenceNumber), r.Err)
		}
	}))
	// Someone without the key writes a record in plaintext.
	plain := kinesis.New(fakeClientOptions(fake))
	for i, c := range []*kinesis.Client{client, plain, client} {
		_, err := c.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte(fmt.Sprint("hello ", i+1)),
		})
		if err != nil {
			panic(err)
		}
	}

	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String("orders"),
		ShardId:           aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		panic(err)
	}
	out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		// A transient failure: back off, then retry with the same iterator.
		panic(err)
	}
	arns := ksse.KeyARNs(out.ResultMetadata)
	for i, r := range out.Records {
		fmt.Printf("read %s: %q (allowed key: %v)\n", aws.ToString(r.SequenceNumber), r.Data, arns[i] == keyARN)
	}
	// Output:
	// rejected orders/2: record: record is not encrypted
	// read 1: "hello 1" (allowed key: true)
	// read 3: "hello 3" (allowed key: true)
}

// Enhanced fan-out delivers records in SubscribeToShard events; decrypt
// each event's records in place, naming the stream by the consumer ARN
// given to SubscribeToShard.
func ExampleDecryptSubscribeToShardEvent() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, _ := record.NewEncryptor(kmsClient, keyARN)
	defer enc.Close()
	dec, _ := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	defer dec.Close()

	// An event as SubscribeToShard delivers it (built here for the example).
	r, _ := enc.Encrypt(ctx, "orders", "customer-42", []byte("order 1"))
	ev := types.SubscribeToShardEvent{
		Records:                    []types.Record{{Data: r.Data, PartitionKey: aws.String(r.PartitionKey), SequenceNumber: aws.String("1")}},
		ContinuationSequenceNumber: aws.String("1"),
	}

	// In the loop over stream.Events():
	//   case *types.SubscribeToShardEventStreamMemberSubscribeToShardEvent:
	//       err := ksse.DecryptSubscribeToShardEvent(ctx, dec, consumerARN, &ev.Value)
	consumerARN := "arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/billing:1700000000"
	if err := ksse.DecryptSubscribeToShardEvent(ctx, dec, consumerARN, &ev); err != nil {
		panic(err)
	}
	fmt.Printf("%s %q\n", aws.ToString(ev.Records[0].PartitionKey), ev.Records[0].Data)
	// Output:
	// customer-42 "order 1"
}
