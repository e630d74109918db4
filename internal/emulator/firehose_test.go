package emulator_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

// TestFirehoseToS3 sends a PutRecordBatch to a DirectPut delivery stream
// with an S3 destination and reads the object moto writes. It pins down
// moto's behaviour: one object per PutRecordBatch (or PutRecord) call,
// written at once, holding the records' bytes concatenated with nothing
// between them, under PREFIX/YYYY/MM/DD/HH/NAME-VERSION-YYYY-MM-DD-HH-MM-SS-UUID.
func TestFirehoseToS3(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cfg := emulatortest.Shared(t, emulator.Moto).AWSConfig()
	s3c := s3.NewFromConfig(cfg, emulator.S3Options)
	fh := firehose.NewFromConfig(cfg)

	bucket := emulator.UniqueName("ksse-bucket")
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("CreateBucket: %v", err)
	}
	name := emulator.UniqueName("ksse-delivery")
	created, err := fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{
		DeliveryStreamName: aws.String(name),
		DeliveryStreamType: fhtypes.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{
			BucketARN: aws.String("arn:aws:s3:::" + bucket),
			RoleARN:   aws.String("arn:aws:iam::123456789012:role/firehose-test"),
			Prefix:    aws.String("records/"),
		},
	})
	if err != nil {
		t.Fatalf("CreateDeliveryStream: %v", err)
	}
	t.Logf("delivery stream %s", aws.ToString(created.DeliveryStreamARN))
	desc, err := fh.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("DescribeDeliveryStream: %v", err)
	}
	t.Logf("status right after create: %s, version %s", desc.DeliveryStreamDescription.DeliveryStreamStatus,
		aws.ToString(desc.DeliveryStreamDescription.VersionId))

	batches := [][][]byte{
		{[]byte("first\n"), []byte("second"), {0, 0xff, 0}},
		{[]byte("third")},
	}
	for _, batch := range batches {
		var recs []fhtypes.Record
		for _, d := range batch {
			recs = append(recs, fhtypes.Record{Data: d})
		}
		out, err := fh.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String(name), Records: recs})
		if err != nil {
			t.Fatalf("PutRecordBatch: %v", err)
		}
		if aws.ToInt32(out.FailedPutCount) != 0 || len(out.RequestResponses) != len(batch) {
			t.Fatalf("PutRecordBatch: %d failed, %d responses for %d records", aws.ToInt32(out.FailedPutCount), len(out.RequestResponses), len(batch))
		}
	}

	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(list.Contents) != len(batches) {
		t.Fatalf("%d objects after %d PutRecordBatch calls, want one per call", len(list.Contents), len(batches))
	}
	// Keys sort by time to the second, then by a random UUID, so two objects
	// written in the same second come back in either order.
	want := map[string]bool{}
	for _, batch := range batches {
		want[string(bytes.Join(batch, nil))] = true
	}
	for _, obj := range list.Contents {
		key := aws.ToString(obj.Key)
		t.Logf("object %s (%d bytes)", key, aws.ToInt64(obj.Size))
		if !strings.HasPrefix(key, "records/") || !strings.Contains(key, "/"+name+"-") {
			t.Errorf("object key %q: want records/YYYY/MM/DD/HH/%s-...", key, name)
		}
		got, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: obj.Key})
		if err != nil {
			t.Fatalf("GetObject: %v", err)
		}
		body, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !want[string(body)] {
			t.Errorf("object %s holds %q, want one batch's records concatenated", key, body)
		}
		delete(want, string(body))
	}
}
