// Command producer encrypts records with ksse and sends them to a Kinesis
// data stream with Encryptor.PutRecords: the stream holds envelopes, each
// routed to the shard its plaintext partition key hashes to. It uses the
// SDK's standard configuration; against moto, with a key and a stream made
// first (here with the AWS CLI):
//
//	export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
//		AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
//	KEY=$(aws kms create-key --query KeyMetadata.Arn --output text)
//	aws kinesis create-stream --stream-name orders --shard-count 2
//	go run ./examples/producer -stream orders -key-id "$KEY"
//
// -key-id takes any key ID, key ARN or alias. Read the records back with
// ./examples/consumer -stream orders -key-arn "$KEY" or
// `ksse tail --stream orders --key-arn "$KEY"`: readers name the key they
// trust by its ARN.
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
	stream := flag.String("stream", "", "Kinesis data stream name or ARN (required)")
	keyID := flag.String("key-id", "", "symmetric KMS key: key ID, ARN or alias (required)")
	count := flag.Int("count", 5, "number of records to send, 1 to 500")
	flag.Parse()
	if *stream == "" || *keyID == "" || *count < 1 || *count > 500 {
		flag.Usage()
		os.Exit(2)
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	enc, err := record.NewEncryptor(kms.NewFromConfig(cfg), *keyID)
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Close()

	in := &kinesis.PutRecordsInput{StreamName: stream}
	for i := range *count {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("customer-%d", i%3+1)),
			Data:         fmt.Appendf(nil, `{"order":%d,"cents":%d}`, i+1, 250*(i+1)),
		})
	}
	out, err := enc.PutRecords(ctx, kinesis.NewFromConfig(cfg), in)
	if be, ok := errors.AsType[*record.BatchError](err); ok {
		// Some records were not accepted: in.Records[f.Index] still holds
		// each one's plaintext, to send again.
		for _, f := range be.Failed {
			log.Printf("record %d not sent: %v", f.Index, f.Err)
		}
		os.Exit(1)
	} else if err != nil {
		log.Fatal(err)
	}
	for i, r := range out.Records {
		fmt.Printf("sent %s %s to %s\n", *in.Records[i].PartitionKey, in.Records[i].Data, *r.ShardId)
	}
	fmt.Printf("%d records, %d KMS calls\n", len(out.Records), enc.Stats().KMSCalls)
}
