package record_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

// TestKinesaliteLimits runs the Encryptor against kinesalite, which, unlike
// moto, validates records as Kinesis does (data size, hash key range and
// pattern): the largest record the Encryptor accepts is accepted by the
// service, every ExplicitHashKey it computes is valid, and the records read
// back decrypt.
func TestKinesaliteLimits(t *testing.T) {
	srv := emulatortest.Shared(t, emulator.Kinesalite)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := kinesis.NewFromConfig(srv.AWSConfig())
	stream := emulator.UniqueName("ksse-strict")
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: &stream, ShardCount: aws.Int32(2)})
	require.NoError(t, err)
	require.NoError(t, kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
	}).Wait(ctx, &kinesis.DescribeStreamInput{StreamName: &stream}, 30*time.Second))

	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(k, anyKey)
	require.NoError(t, err)
	defer dec.Close()

	// The largest payload whose encrypted record fits 1 MiB.
	const pk = "largest"
	empty, err := enc.Encrypt(ctx, stream, pk, nil)
	require.NoError(t, err)
	maxPayload := record.DefaultMaxRecordSize - len(empty.Data) - len(record.OutboundPartitionKey)
	big := make([]byte, maxPayload)
	for i := range big {
		big[i] = byte(i)
	}
	_, err = enc.PutRecord(ctx, client, &kinesis.PutRecordInput{StreamName: &stream, PartitionKey: aws.String(pk), Data: big})
	require.NoError(t, err, "the largest record the Encryptor accepts must be accepted by Kinesis")
	_, err = enc.Encrypt(ctx, stream, pk, make([]byte, maxPayload+1))
	require.ErrorIs(t, err, record.ErrRecordTooLarge)

	// Hash keys over the whole range are valid for the service.
	var entries []types.PutRecordsRequestEntry
	want := map[string]string{pk: string(big)}
	for i := range 300 {
		p := fmt.Sprintf("key-%d", i)
		want[p] = "payload " + p
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(p), Data: []byte(want[p])})
	}
	out, err := enc.PutRecords(ctx, client, &kinesis.PutRecordsInput{StreamName: &stream, Records: entries})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))

	// Read every shard back and decrypt.
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: &stream})
	require.NoError(t, err)
	got := map[string]string{}
	for _, sh := range shards.Shards {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: &stream, ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		require.NoError(t, err)
		iter := it.ShardIterator
		for iter != nil {
			res, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			require.NoError(t, err)
			if len(res.Records) == 0 {
				break
			}
			for _, r := range res.Records {
				require.Equal(t, record.OutboundPartitionKey, aws.ToString(r.PartitionKey))
			}
			var be *record.BatchError
			if err := dec.DecryptRecords(ctx, stream, res.Records); errors.As(err, &be) {
				t.Fatalf("decrypt: %v", err)
			}
			for _, r := range res.Records {
				got[aws.ToString(r.PartitionKey)] = string(r.Data)
			}
			iter = res.NextShardIterator
		}
	}
	require.Equal(t, len(want), len(got))
	for p, v := range want {
		require.Equal(t, v, got[p], p)
	}
}
