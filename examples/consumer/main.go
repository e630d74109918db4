// Command consumer reads every shard of a Kinesis data stream until it is
// caught up and prints the records decrypted with Decryptor.DecryptRecords.
// It trusts the data keys of one KMS key, given by its ARN (strict mode).
// Records that can never decrypt (forged, not encrypted, of another key) are
// reported and skipped; any other failure (throttling, KMS unreachable) stops
// it, to be retried later from the same place. It uses the SDK's standard
// configuration; against moto, for example:
//
//	AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//	AWS_SECRET_ACCESS_KEY=test-secret-access-key go run ./examples/consumer -stream orders \
//	-key-arn arn:aws:kms:us-east-1:123456789012:key/KEY-ID
//
// It does not read parent shards before children after resharding: `ksse tail` does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ksse-go/ksse/record"
)

func main() {
	stream := flag.String("stream", "", "Kinesis data stream name (required)")
	keyARN := flag.String("key-arn", "", "ARN of the KMS key whose records to trust (required)")
	flag.Parse()
	if *stream == "" || *keyARN == "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx := context.Background()
	cfg := must(config.LoadDefaultConfig(ctx))
	client := kinesis.NewFromConfig(cfg)
	dec := must(record.NewDecryptor(kms.NewFromConfig(cfg), func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{*keyARN}
	}))
	defer dec.Close()

	failed := 0
	for _, sh := range must(client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: stream})).Shards {
		it := must(client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: stream, ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}))
		for next := it.ShardIterator; next != nil; {
			out := must(client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next}))
			bad := map[int]bool{}
			if err := dec.DecryptRecords(ctx, *stream, out.Records); err != nil {
				be, ok := errors.AsType[*record.BatchError](err)
				if !ok {
					log.Fatal(err)
				}
				for _, f := range be.Failed { // never printed: not authentic
					if !record.IsPermanent(f.Err) {
						log.Fatal(f.Err) // transient: retry later, from this record on
					}
					bad[f.Index], failed = true, failed+1
					log.Printf("%s %s: skipped: %v", *sh.ShardId, *out.Records[f.Index].SequenceNumber, f.Err)
				}
			}
			for i, r := range out.Records {
				if !bad[i] {
					fmt.Printf("%s %s %s\n", *sh.ShardId, *r.PartitionKey, r.Data)
				}
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break // caught up
			}
			next = out.NextShardIterator
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
