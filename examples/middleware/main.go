// Command middleware writes and reads records with plain Kinesis SDK calls
// on a client given one option, ksse.WithEncryption: the stream holds only
// envelopes, the program sees plaintext. Its Decryptor trusts one KMS key,
// by ARN (strict mode). Against moto, which it sets up:
//
//	AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//	AWS_SECRET_ACCESS_KEY=test-secret-access-key go run ./examples/middleware
//
// Against AWS: go run ./examples/middleware -stream NAME -key-arn arn:aws:kms:REGION:ACCOUNT:key/ID
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ksse-go/ksse"
	"github.com/ksse-go/ksse/record"
)

func main() {
	stream := flag.String("stream", "ksse-example", "Kinesis data stream (created if missing)")
	keyARN := flag.String("key-arn", "", "ARN of a symmetric KMS key, to encrypt under and to trust (created if empty and AWS_ENDPOINT_URL is set)")
	flag.Parse()
	ctx := context.Background()
	cfg := must(config.LoadDefaultConfig(ctx))
	kmsClient := kms.NewFromConfig(cfg)
	if *keyARN == "" && os.Getenv("AWS_ENDPOINT_URL") != "" {
		*keyARN = *must(kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})).KeyMetadata.Arn
	}
	enc := must(record.NewEncryptor(kmsClient, *keyARN))
	defer enc.Close()
	dec := must(record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{*keyARN} // only records of this key decrypt
	}))
	defer dec.Close()
	client := kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec))
	var nf *types.ResourceNotFoundException
	if _, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: stream}); errors.As(err, &nf) {
		must(client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: stream, ShardCount: aws.Int32(1)}))
		must(0, kinesis.NewStreamExistsWaiter(client).Wait(ctx, &kinesis.DescribeStreamInput{StreamName: stream}, time.Minute))
	}

	// From here on, the program's Kinesis code as it would be without ksse.
	start := time.Now().Add(-time.Second)
	out := must(client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: stream, Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("customer-42"), Data: []byte(`{"order":1,"amount":12.5}`)},
		{PartitionKey: aws.String("customer-7"), Data: []byte(`{"order":2,"amount":3}`)},
	}}))
	fmt.Printf("put %d records, %d failed\n", len(out.Records), aws.ToInt32(out.FailedRecordCount))
	for _, sh := range must(client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: stream})).Shards {
		it := must(client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: stream, ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: &start}))
		for next := it.ShardIterator; next != nil; {
			res := must(client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})) // *ksse.GetRecordsError if a record fails
			for _, r := range res.Records {
				fmt.Printf("%s %s: %s (%s)\n", *sh.ShardId, *r.PartitionKey, r.Data, r.EncryptionType)
			}
			if aws.ToInt64(res.MillisBehindLatest) == 0 {
				break
			}
			next = res.NextShardIterator
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
