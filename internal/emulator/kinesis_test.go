package emulator_test

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

// TestKinesis creates a 2-shard stream, writes records to chosen shards with
// ExplicitHashKey, and reads them back, with the real SDK client. It also
// pins down the moto behaviour that other tests rely on.
func TestKinesis(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	client := kinesis.NewFromConfig(emulatortest.Shared(t, emulator.Moto).AWSConfig())
	stream := emulator.UniqueName("ksse-stream")

	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName: aws.String(stream),
		ShardCount: aws.Int32(2),
	}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
	})
	waiter := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, 30*time.Second); err != nil {
		t.Fatalf("waiting for the stream: %v", err)
	}
	summary, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("DescribeStreamSummary: %v", err)
	}
	streamARN := aws.ToString(summary.StreamDescriptionSummary.StreamARN)

	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	if len(shards.Shards) != 2 {
		t.Fatalf("ListShards: %d shards, want 2", len(shards.Shards))
	}
	two127 := new(big.Int).Lsh(big.NewInt(1), 127)
	maxKey := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	wantRanges := [][2]*big.Int{
		{big.NewInt(0), new(big.Int).Sub(two127, big.NewInt(1))},
		{two127, maxKey},
	}
	for i, sh := range shards.Shards {
		lo, hi := aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey)
		t.Logf("shard %s: hash keys [%s, %s]", aws.ToString(sh.ShardId), lo, hi)
		if lo != wantRanges[i][0].String() || hi != wantRanges[i][1].String() {
			t.Errorf("shard %d range [%s, %s], want [%s, %s]", i, lo, hi, wantRanges[i][0], wantRanges[i][1])
		}
	}

	// One record per shard, each placed by ExplicitHashKey (never a shard's
	// EndingHashKey: moto answers that with HTTP 500).
	records := []struct {
		hashKey string
		shard   string
		data    []byte
	}{
		{"12345", aws.ToString(shards.Shards[0].ShardId), []byte("to shard zero")},
		{two127.String(), aws.ToString(shards.Shards[1].ShardId), []byte{0, 1, 2, 0xff, 'x'}},
	}
	for _, r := range records {
		out, err := client.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName:      aws.String(stream),
			PartitionKey:    aws.String("pk"),
			ExplicitHashKey: aws.String(r.hashKey),
			Data:            r.data,
		})
		if err != nil {
			t.Fatalf("PutRecord (hash key %s): %v", r.hashKey, err)
		}
		if got := aws.ToString(out.ShardId); got != r.shard {
			t.Errorf("PutRecord with hash key %s went to %s, want %s", r.hashKey, got, r.shard)
		}
	}
	for _, r := range records {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(stream),
			ShardId:           aws.String(r.shard),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatalf("GetShardIterator: %v", err)
		}
		got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, StreamARN: aws.String(streamARN)})
		if err != nil {
			t.Fatalf("GetRecords: %v", err)
		}
		if len(got.Records) != 1 || string(got.Records[0].Data) != string(r.data) || aws.ToString(got.Records[0].PartitionKey) != "pk" {
			t.Fatalf("GetRecords on %s: %+v, want one record %q", r.shard, got.Records, r.data)
		}
		if got.NextShardIterator == nil {
			t.Errorf("GetRecords on an open shard: no NextShardIterator")
		}
	}

	// PutRecords by StreamARN alone.
	put, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamARN: aws.String(streamARN),
		Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("a"), ExplicitHashKey: aws.String("0"), Data: []byte("r0")},
			{PartitionKey: aws.String("b"), ExplicitHashKey: aws.String(new(big.Int).Sub(maxKey, big.NewInt(1)).String()), Data: []byte("r1")},
		},
	})
	if err != nil {
		t.Fatalf("PutRecords by StreamARN: %v", err)
	}
	if aws.ToInt32(put.FailedRecordCount) != 0 || aws.ToString(put.Records[1].ShardId) != records[1].shard {
		t.Errorf("PutRecords: %+v", put)
	}

	// moto's checks, as observed; these are moto's behaviour, not AWS's.
	// An ExplicitHashKey of 2^128 or more is rejected as invalid.
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamName: aws.String(stream), PartitionKey: aws.String("pk"),
		ExplicitHashKey: aws.String(new(big.Int).Lsh(big.NewInt(1), 128).String()), Data: []byte("x"),
	})
	var iae *types.InvalidArgumentException
	if !errors.As(err, &iae) {
		t.Errorf("PutRecord with ExplicitHashKey 2^128: err = %v, want InvalidArgumentException", err)
	}
	// A StreamARN naming another stream is ignored when StreamName (or, for
	// GetRecords, the shard iterator) identifies the stream.
	other := "arn:aws:kinesis:us-east-1:123456789012:stream/not-this-one"
	if _, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String(stream), StreamARN: aws.String(other),
		Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: []byte("x")}},
	}); err != nil {
		t.Logf("moto checks StreamARN against StreamName on PutRecords: %v", err)
	} else {
		t.Logf("moto ignores a mismatched StreamARN on PutRecords when StreamName is given")
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(records[0].shard), ShardIteratorType: types.ShardIteratorTypeLatest,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	if _, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, StreamARN: aws.String(other)}); err != nil {
		t.Logf("moto checks StreamARN on GetRecords: %v", err)
	} else {
		t.Logf("moto ignores a mismatched StreamARN on GetRecords")
	}
	// Record size limits: moto checks them on PutRecords only.
	big1 := make([]byte, 1<<20) // 1 MiB data + 1-byte partition key
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String(stream),
		Records:    []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: big1}},
	})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ValidationException" {
		t.Errorf("PutRecords of 1 MiB + 1 byte: err = %v, want ValidationException", err)
	}
	// PutRecord (singular) does not check the size: moto accepts this.
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("a"), Data: big1})
	t.Logf("PutRecord of 1 MiB + 1 byte: err = %v", err)
	// Not exercised here: moto answers HTTP 500 (an internal error that the
	// SDK retries) for an ExplicitHashKey equal to any shard's
	// EndingHashKey, including 2^128-1, and for a negative or non-numeric
	// one.
}
