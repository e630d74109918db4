package emulator_test

import (
	"context"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

func TestKinesaliteStartClose(t *testing.T) {
	t.Setenv(emulator.KinesaliteEndpointEnv, "")
	begin := time.Now()
	s := emulatortest.New(t, emulator.Kinesalite)
	t.Logf("kinesalite at %s after %v", s.URL(), time.Since(begin).Round(time.Millisecond))
	if s.External() || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Fatalf("External()=%v URL()=%q", s.External(), s.URL())
	}
	ctx := context.Background()
	client := kinesis.NewFromConfig(s.AWSConfig())
	if _, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("ListStreams: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := client.ListStreams(ctx, &kinesis.ListStreamsInput{}, func(o *kinesis.Options) { o.RetryMaxAttempts = 1 })
	if err == nil {
		t.Fatal("kinesalite still answers after Close")
	}
}

func TestKinesaliteNotInstalled(t *testing.T) {
	t.Setenv(emulator.KinesaliteEndpointEnv, "")
	t.Setenv(emulator.KinesaliteDirEnv, t.TempDir())
	_, err := emulator.Kinesalite.Start(context.Background())
	if !errors.Is(err, emulator.ErrNotInstalled) {
		t.Fatalf("Start with an empty %s: err = %v, want ErrNotInstalled", emulator.KinesaliteDirEnv, err)
	}
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// TestKinesaliteLimits pins down what kinesalite enforces that moto does not: these
// are the checks a test against kinesalite adds.
func TestKinesaliteLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := kinesis.NewFromConfig(emulatortest.Shared(t, emulator.Kinesalite).AWSConfig())
	stream := emulator.UniqueName("ksse-stream")
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	waiter := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = 500 * time.Millisecond
	})
	if err := waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, 30*time.Second); err != nil {
		t.Fatalf("waiting for the stream: %v", err)
	}
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	for _, sh := range shards.Shards {
		t.Logf("shard %s: hash keys [%s, %s]", aws.ToString(sh.ShardId), aws.ToString(sh.HashKeyRange.StartingHashKey), aws.ToString(sh.HashKeyRange.EndingHashKey))
	}
	summary, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	arn := summary.StreamDescriptionSummary.StreamARN

	noRetry := func(o *kinesis.Options) { o.RetryMaxAttempts = 1 }
	put := func(pk, hk string, data []byte) (*kinesis.PutRecordOutput, error) {
		in := &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(pk), Data: data}
		if hk != "" {
			in.ExplicitHashKey = aws.String(hk)
		}
		return client.PutRecord(ctx, in, noRetry)
	}
	mib := 1 << 20
	two128 := new(big.Int).Lsh(big.NewInt(1), 128)
	endingHashKey0 := aws.ToString(shards.Shards[0].HashKeyRange.EndingHashKey)

	for _, c := range []struct {
		name     string
		pk, hk   string
		size     int
		wantCode string // "" for success, "?" for not checked
	}{
		{"1 MiB data, 1-byte partition key", "a", "", mib, ""},
		{"1 MiB data, 256-byte partition key", strings.Repeat("k", 256), "", mib, ""},
		{"1 MiB + 1 byte data", "a", "", mib + 1, "ValidationException"},
		{"257-byte partition key", strings.Repeat("k", 257), "", 1, "ValidationException"},
		{"ExplicitHashKey 2^128", "a", two128.String(), 1, "InvalidArgumentException"},
		{"ExplicitHashKey -1", "a", "-1", 1, "InvalidArgumentException"},
		{"ExplicitHashKey abc", "a", "abc", 1, "ValidationException"},
		// kinesalite's pattern check is not anchored, so it passes "01".
		{"ExplicitHashKey with a leading zero", "a", "01", 1, "?"},
		{"ExplicitHashKey = shard 0's EndingHashKey", "a", endingHashKey0, 1, ""},
		{"ExplicitHashKey 2^128-1", "a", new(big.Int).Sub(two128, big.NewInt(1)).String(), 1, ""},
		{"empty data", "a", "", 0, ""},
	} {
		out, err := put(c.pk, c.hk, make([]byte, c.size))
		got := errorCode(err)
		t.Logf("PutRecord, %s: %v", c.name, err)
		if c.wantCode != "?" && got != c.wantCode {
			t.Errorf("PutRecord, %s: error code %q, want %q", c.name, got, c.wantCode)
		}
		if c.hk == endingHashKey0 && err == nil && aws.ToString(out.ShardId) != aws.ToString(shards.Shards[0].ShardId) {
			t.Errorf("EndingHashKey of shard 0 went to %s", aws.ToString(out.ShardId))
		}
	}

	// PutRecords: per-record data limit, total request limit.
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String(stream),
		Records:    []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: make([]byte, mib+1)}},
	}, noRetry)
	t.Logf("PutRecords with 1 MiB + 1 byte of data: %v", err)
	if errorCode(err) != "ValidationException" {
		t.Errorf("PutRecords with 1 MiB + 1 byte of data: %v, want ValidationException", err)
	}
	// Over 5 MiB in all, but under kinesalite's 7 MiB request body limit
	// once base64-encoded.
	var five []types.PutRecordsRequestEntry
	for range 5 {
		five = append(five, types.PutRecordsRequestEntry{PartitionKey: aws.String("a"), Data: make([]byte, mib)})
	}
	five = append(five, types.PutRecordsRequestEntry{PartitionKey: aws.String("a"), Data: make([]byte, 1024)})
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: five}, noRetry)
	t.Logf("PutRecords of 5 MiB + 1 KiB: %v", err)
	var six []types.PutRecordsRequestEntry
	for range 6 {
		six = append(six, types.PutRecordsRequestEntry{PartitionKey: aws.String("a"), Data: make([]byte, mib)})
	}
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: six}, noRetry)
	t.Logf("PutRecords of 6 MiB: %v", err)
	if err == nil {
		t.Errorf("PutRecords of 6 MiB accepted")
	}

	// StreamARN: kinesalite predates it.
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamARN: arn, PartitionKey: aws.String("a"), Data: []byte("x")}, noRetry)
	t.Logf("PutRecord with StreamARN and no StreamName: %v", err)
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), StreamARN: arn, PartitionKey: aws.String("a"), Data: []byte("x")}, noRetry)
	t.Logf("PutRecord with StreamName and StreamARN: %v", err)
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: shards.Shards[0].ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, StreamARN: arn}, noRetry)
	t.Logf("GetRecords with StreamARN: err = %v", err)
	if err == nil {
		t.Logf("GetRecords: %d records on shard 0", len(got.Records))
	}
}
