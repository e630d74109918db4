// Command firehose sends encrypted records to a Firehose delivery stream
// (Direct PUT to S3) through a client given kssefirehose.WithEncryption, then
// decrypts the objects Firehose wrote with a kssefirehose.Reader. Against
// moto, which it sets up (KMS key, bucket, delivery stream):
//
//	AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
//	AWS_SECRET_ACCESS_KEY=test-secret-access-key go run ./examples/firehose
//
// Against AWS (Firehose buffers records a minute or more before writing them):
// go run ./examples/firehose -delivery-stream NAME -bucket BUCKET -key-arn arn:aws:kms:REGION:ACCOUNT:key/ID
//
// The Reader's Decryptor trusts that one key (strict mode).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ksse-go/ksse/kssefirehose"
	"github.com/ksse-go/ksse/record"
)

func main() {
	name := flag.String("delivery-stream", "ksse-example", "Firehose delivery stream writing to -bucket")
	bucket := flag.String("bucket", "ksse-example", "S3 bucket of the delivery stream")
	keyARN := flag.String("key-arn", "", "ARN of a symmetric KMS key, to encrypt under and to trust")
	flag.Parse()
	ctx := context.Background()
	cfg := must(config.LoadDefaultConfig(ctx))
	kmsClient, fh := kms.NewFromConfig(cfg), firehose.NewFromConfig(cfg)
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle, o.DisableLogOutputChecksumValidationSkipped = true, true })
	if os.Getenv("AWS_ENDPOINT_URL") != "" { // a local emulator: set up what is missing
		*keyARN = *must(kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})).KeyMetadata.Arn
		s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket})
		fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: name,
			ExtendedS3DestinationConfiguration: &types.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::" + *bucket),
				RoleARN: aws.String("arn:aws:iam::123456789012:role/firehose")}})
	}
	enc := must(record.NewEncryptor(kmsClient, *keyARN))
	defer enc.Close()
	dec := must(record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{*keyARN} // only records of this key decrypt
	}))
	defer dec.Close()

	start := time.Now().Add(-time.Second)
	client := firehose.NewFromConfig(cfg, kssefirehose.WithEncryption(enc)) // the program's code is unchanged
	must(client.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: name, Records: []types.Record{
		{Data: []byte(`{"page":"/","user":42}` + "\n")}, {Data: []byte(`{"page":"/cart","user":42}` + "\n")}}}))
	for found := false; !found; {
		time.Sleep(time.Second)
		for _, obj := range must(s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: bucket})).Contents {
			if obj.LastModified.Before(start) {
				continue // written before this run
			}
			found = true
			body := must(s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: obj.Key})).Body
			for rec, err := range must(kssefirehose.NewReader(dec, *name, body)).All(ctx) {
				must(0, err) // a *kssefirehose.ReadError: not authentic, or not envelopes
				fmt.Printf("%s: %s", *obj.Key, rec.Data)
			}
			body.Close()
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
