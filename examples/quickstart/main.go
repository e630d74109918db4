// Command quickstart sends an encrypted record to a Kinesis data stream and
// reads it back, decrypted, trusting one KMS key:
//
//	go run ./examples/quickstart -stream orders -key-arn arn:aws:kms:REGION:ACCOUNT:key/ID
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ksse-go/ksse/record"
)

func main() {
	stream := flag.String("stream", "orders", "Kinesis data stream")
	keyARN := flag.String("key-arn", "", "ARN of a symmetric KMS key")
	flag.Parse()
	if err := run(context.Background(), *stream, *keyARN); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, stream, keyARN string) error {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	kmsClient, kinesisClient := kms.NewFromConfig(cfg), kinesis.NewFromConfig(cfg)

	// Producer: one GenerateDataKey per 5 minutes, each record sealed alone.
	enc, err := record.NewEncryptor(kmsClient, keyARN)
	if err != nil {
		return err
	}
	defer enc.Close()
	payload := []byte(`{"order":1001,"cents":1250}`)
	put, err := enc.PutRecords(ctx, kinesisClient, &kinesis.PutRecordsInput{
		StreamName: aws.String(stream),
		Records:    []types.PutRecordsRequestEntry{{PartitionKey: aws.String("customer-42"), Data: payload}},
	})
	if err != nil {
		return err // a *record.BatchError lists the entries to retry, by index, with their reason
	}

	// Consumer: strict mode, only records under keyARN decrypt.
	dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{keyARN}
	})
	if err != nil {
		return err
	}
	defer dec.Close()
	it, err := kinesisClient.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName:        aws.String(stream),
		ShardId:           put.Records[0].ShardId, // the record's shard; a reader lists them all
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		return err
	}
	for iter := it.ShardIterator; iter != nil; {
		res, err := kinesisClient.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return err
		}
		if err := dec.DecryptRecords(ctx, stream, res.Records); err != nil {
			return err // a *record.BatchError; record.IsPermanent tells the records to skip from those to retry
		}
		for _, r := range res.Records {
			fmt.Printf("%s: %s\n", *r.PartitionKey, r.Data)
		}
		if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
			return nil // caught up
		}
		iter = res.NextShardIterator
	}
	return nil
}
