package ksse

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/version"
	"github.com/ksse-go/ksse/record"
)

func TestIteratorStreamsBound(t *testing.T) {
	m := newIteratorStreams(8)
	for i := range 20 {
		m.put(fmt.Sprint("it", i), fmt.Sprint("s", i))
		// The latest four are always remembered.
		for j := max(0, i-3); j <= i; j++ {
			s, ok := m.get(fmt.Sprint("it", j))
			require.True(t, ok, "after %d puts, iterator %d forgotten", i+1, j)
			require.Equal(t, fmt.Sprint("s", j), s)
		}
		require.LessOrEqual(t, len(m.cur)+len(m.old), 8)
	}
	_, ok := m.get("it0")
	require.False(t, ok)
	_, ok = m.get("never")
	require.False(t, ok)
}

func TestVersion(t *testing.T) {
	// In this module's own tests ksse is the main module, not a dependency.
	require.Equal(t, "devel", version.Get())
}

// headerRecorder is an HTTP client that records the User-Agent of every
// request it sends.
type headerRecorder struct {
	next aws.HTTPClient
	mu   sync.Mutex
	uas  []string
}

func (h *headerRecorder) Do(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.uas = append(h.uas, req.Header.Get("User-Agent"))
	h.mu.Unlock()
	return h.next.Do(req)
}

// TestMoto runs the option against moto's Kinesis and KMS, with the real
// SDK clients: records land on the shard of their plaintext partition key,
// the stream holds only envelopes, and the application reads plaintext.
func TestMoto(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := emulatortest.Shared(t, emulator.Moto).AWSConfig()

	key, err := kms.NewFromConfig(cfg).CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	enc, err := record.NewEncryptor(kms.NewFromConfig(cfg), aws.ToString(key.KeyMetadata.Arn))
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(kms.NewFromConfig(cfg), func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{aws.ToString(key.KeyMetadata.Arn)}
	})
	require.NoError(t, err)
	defer dec.Close()

	raw := kinesis.NewFromConfig(cfg)
	stream := emulator.UniqueName("ksse-middleware")
	_, err = raw.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(2)})
	require.NoError(t, err)
	defer raw.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
	waiter := kinesis.NewStreamExistsWaiter(raw, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	require.NoError(t, waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, 30*time.Second))

	rec := &headerRecorder{next: awshttp.NewBuildableClient()}
	client := kinesis.NewFromConfig(cfg, WithEncryption(enc, dec), func(o *kinesis.Options) { o.HTTPClient = rec })

	// The application's code: plain SDK calls.
	want := map[string][]string{} // partition key → payloads in order
	var entries []types.PutRecordsRequestEntry
	for i := range 30 {
		pk, data := fmt.Sprintf("customer-%d", i%7), fmt.Sprintf("order %d", i)
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(pk), Data: []byte(data)})
		want[pk] = append(want[pk], data)
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
	require.NoError(t, err)
	require.EqualValues(t, 0, aws.ToInt32(out.FailedRecordCount))
	one, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("customer-0"), Data: []byte("last")})
	require.NoError(t, err)
	want["customer-0"] = append(want["customer-0"], "last")

	shards, err := raw.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	require.Len(t, shards.Shards, 2)
	got := map[string][]string{}
	for _, sh := range shards.Shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)

		// What the stream holds: envelopes under the outbound partition key.
		it, err := raw.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		onWire, err := raw.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		for _, r := range onWire.Records {
			require.Equal(t, record.OutboundPartitionKey, aws.ToString(r.PartitionKey))
			require.True(t, envelope.IsEnvelope(r.Data))
			require.NotContains(t, string(r.Data), "order")
		}
		if aws.ToString(sh.ShardId) == aws.ToString(one.ShardId) {
			require.NotEmpty(t, onWire.Records)
		}

		// What the application reads.
		it, err = client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		res, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		require.Len(t, res.Records, len(onWire.Records))
		for _, r := range res.Records {
			pk := aws.ToString(r.PartitionKey)
			h, _ := new(big.Int).SetString(hashkey.Of(pk), 10)
			require.True(t, h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0, "record of %s on shard %s", pk, aws.ToString(sh.ShardId))
			require.Equal(t, types.EncryptionTypeKms, r.EncryptionType)
			got[pk] = append(got[pk], string(r.Data))
		}
		// The next iterator is followed without StreamARN.
		res, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: res.NextShardIterator})
		require.NoError(t, err)
		require.Empty(t, res.Records)
	}
	require.Equal(t, want, got)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.NotEmpty(t, rec.uas)
	for _, ua := range rec.uas {
		require.True(t, strings.Contains(ua, " ksse/"), "User-Agent %q", ua)
	}
}

// TestMarkFailed: records the Encryptor counts as failed but the SDK output
// does not mark (no sequence number, or no result at all) get an ErrorCode,
// and FailedRecordCount counts them, so a caller's usual retry loop resends
// them.
func TestMarkFailed(t *testing.T) {
	ok := types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-0")}
	throttled := types.PutRecordsResultEntry{ErrorCode: aws.String("ProvisionedThroughputExceededException")}
	noSeq := types.PutRecordsResultEntry{ShardId: aws.String("shardId-0")}
	fail := func(idx ...int) *record.BatchError {
		be := &record.BatchError{Op: "PutRecords"}
		for _, i := range idx {
			be.Failed = append(be.Failed, record.RecordError{Index: i, Err: &record.ServiceError{Code: "Unknown"}})
		}
		return be
	}
	markFailed := func(out *kinesis.PutRecordsOutput, n int, be *record.BatchError) {
		var failed int32
		out.Records, failed = record.MarkFailed(out.Records, n, be, kinesisResult)
		out.FailedRecordCount = &failed
	}

	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(1), Records: []types.PutRecordsResultEntry{ok, noSeq, throttled}}
	require.Equal(t, []int{1, 2}, record.Unacknowledged("PutRecords", 3, out.Records, kinesisResult).Indexes())
	markFailed(out, 3, fail(1, 2))
	require.Equal(t, int32(2), *out.FailedRecordCount)
	require.Equal(t, "InternalFailure", aws.ToString(out.Records[1].ErrorCode))
	require.Nil(t, out.Records[1].ShardId)
	require.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(out.Records[2].ErrorCode), "a code Kinesis gave is kept")
	require.Equal(t, "1", aws.ToString(out.Records[0].SequenceNumber))

	short := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0), Records: []types.PutRecordsResultEntry{ok}}
	markFailed(short, 3, fail(0, 1, 2))
	require.Len(t, short.Records, 3)
	require.Equal(t, int32(3), *short.FailedRecordCount)
	for _, r := range short.Records {
		require.NotNil(t, r.ErrorCode)
	}
}

// forgedEnvelope returns an envelope made without KMS: the body sealed
// under a data key of the forger's choosing, with a made-up wrapped key.
func forgedEnvelope(t testing.TB, stream string) []byte {
	t.Helper()
	dk, wk := make([]byte, 32), make([]byte, 184)
	rand.Read(dk)
	rand.Read(wk)
	k, err := envelope.NewKey(dk, wk, []byte("kinesis:"+stream))
	require.NoError(t, err)
	defer k.Destroy()
	data, err := k.Seal(nil, []byte("pk"), []byte("forged"))
	require.NoError(t, err)
	return data
}

// TestMotoSkipMode reads, with real GetRecords calls against moto's
// Kinesis and KMS, a shard that holds a plaintext record, a forged one, a
// tampered one and one under a KMS key not allowed between good records.
// With OnReject, the usual loop that stops at any error reads on past them
// and reports each once; without, GetRecords fails at the first, as
// before.
func TestMotoSkipMode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := emulatortest.Shared(t, emulator.Moto).AWSConfig()
	kmsClient := kms.NewFromConfig(cfg)

	newKey := func() string {
		key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
		return aws.ToString(key.KeyMetadata.Arn)
	}
	keyARN, otherARN := newKey(), newKey()
	enc, err := record.NewEncryptor(kmsClient, keyARN)
	require.NoError(t, err)
	defer enc.Close()
	other, err := record.NewEncryptor(kmsClient, otherARN)
	require.NoError(t, err)
	defer other.Close()
	dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	require.NoError(t, err)
	defer dec.Close()

	raw := kinesis.NewFromConfig(cfg)
	stream := emulator.UniqueName("ksse-skip")
	_, err = raw.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	defer raw.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(stream)})
	waiter := kinesis.NewStreamExistsWaiter(raw, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, time.Second
	})
	require.NoError(t, waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, 30*time.Second))

	producer := kinesis.NewFromConfig(cfg, WithEncryption(enc, nil))
	putRaw := func(data []byte) {
		_, err := raw.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("ksse"), Data: data})
		require.NoError(t, err)
	}
	encrypted := func(e *record.Encryptor, v string) []byte {
		r, err := e.Encrypt(ctx, stream, "pk", []byte(v))
		require.NoError(t, err)
		return r.Data
	}
	tampered := encrypted(enc, "tampered")
	tampered[len(tampered)-5] ^= 1
	bad := map[int][]byte{ // by position in the shard
		1: []byte("plaintext"),
		2: forgedEnvelope(t, stream),
		4: tampered,
		6: encrypted(other, "other key"),
	}
	var want []string
	for i := range 9 {
		if d, ok := bad[i]; ok {
			putRaw(d)
			continue
		}
		v := fmt.Sprint("good ", i)
		_, err := producer.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String("pk"), Data: []byte(v)})
		require.NoError(t, err)
		want = append(want, v)
	}
	shards, err := raw.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	require.NoError(t, err)
	shardID := shards.Shards[0].ShardId

	// The application's usual loop: any error stops it.
	read := func(client *kinesis.Client) (got []string, arns []string, err error) {
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: shardID, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return nil, nil, err
		}
		iter := it.ShardIterator
		for range 7 { // 9 records, 2 a call, and then some
			out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(2)})
			if err != nil {
				return got, arns, err
			}
			for _, r := range out.Records {
				got = append(got, string(r.Data))
			}
			arns = append(arns, KeyARNs(out.ResultMetadata)...)
			iter = out.NextShardIterator
		}
		return got, arns, nil
	}

	var rejected []Rejected
	skipping := kinesis.NewFromConfig(cfg, WithEncryption(nil, dec, func(o *Options) {
		o.OnReject = func(_ context.Context, r Rejected) { rejected = append(rejected, r) }
	}))
	got, arns, err := read(skipping)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Len(t, arns, len(want))
	for _, a := range arns {
		require.Equal(t, keyARN, a)
	}
	require.Len(t, rejected, len(bad))
	for i, pos := range []int{1, 2, 4, 6} {
		r := rejected[i]
		require.Equal(t, bad[pos], r.Record.Data, "rejected record %d as read", pos)
		require.True(t, record.IsPermanent(r.Err), "%v", r.Err)
		require.Equal(t, stream, r.Stream)
	}
	require.ErrorIs(t, rejected[0].Err, record.ErrNotEncrypted)
	require.ErrorIs(t, rejected[1].Err, envelope.ErrOpen)
	require.ErrorIs(t, rejected[2].Err, envelope.ErrOpen)
	t.Logf("a record under a key not allowed, from moto: %v", rejected[3].Err)

	// Without OnReject: the loop stops at the plaintext record.
	got, _, err = read(kinesis.NewFromConfig(cfg, WithEncryption(nil, dec)))
	var gre *GetRecordsError
	require.ErrorAs(t, err, &gre)
	require.Empty(t, got)
	require.Equal(t, []int{1}, gre.Err.Indexes())
	require.ErrorIs(t, err, record.ErrNotEncrypted)
	require.Equal(t, "good 0", string(gre.Output.Records[0].Data))
}
