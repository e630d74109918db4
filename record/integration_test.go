package record_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/record"
)

// The integration tests run the real aws-sdk-go-v2 KMS and Kinesis clients
// against moto (see package emulatortest: they skip when moto is not installed,
// and fail instead under CI=true).

func TestMain(m *testing.M) { emulatortest.Main(m) }

// itStream is a Kinesis stream created on moto for a test.
type itStream struct {
	name, arn string
	shards    []types.Shard
}

// createStream creates a stream of n shards and waits until it is active.
func createStream(ctx context.Context, t *testing.T, client *kinesis.Client, prefix string, n int32) itStream {
	t.Helper()
	name := emulator.UniqueName(prefix)
	_, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(n)})
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = client.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	waiter := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	require.NoError(t, waiter.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 30*time.Second))
	sum, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	shards, err := client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	require.NoError(t, err)
	require.Len(t, shards.Shards, int(n))
	return itStream{name: name, arn: aws.ToString(sum.StreamDescriptionSummary.StreamARN), shards: shards.Shards}
}

// shardOf returns the shard whose hash key range holds hashKey.
func (s itStream) shardOf(t testing.TB, hashKey string) string {
	t.Helper()
	h, ok := new(big.Int).SetString(hashKey, 10)
	require.True(t, ok, hashKey)
	for _, sh := range s.shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		if h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0 {
			return aws.ToString(sh.ShardId)
		}
	}
	t.Fatalf("no shard holds hash key %s", hashKey)
	return ""
}

// isEndingHashKey reports whether hashKey is the EndingHashKey of a shard,
// which moto answers with HTTP 500.
func (s itStream) isEndingHashKey(hashKey string) bool {
	for _, sh := range s.shards {
		if aws.ToString(sh.HashKeyRange.EndingHashKey) == hashKey {
			return true
		}
	}
	return false
}

// readAll reads every shard of s from TRIM_HORIZON until it is caught up and
// returns the records of each shard, in order.
func readAll(ctx context.Context, t *testing.T, client *kinesis.Client, s itStream) map[string][]types.Record {
	t.Helper()
	out := map[string][]types.Record{}
	for _, sh := range s.shards {
		id := aws.ToString(sh.ShardId)
		it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(s.name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		iter := it.ShardIterator
		for range 100 {
			got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			require.NoError(t, err)
			out[id] = append(out[id], got.Records...)
			iter = got.NextShardIterator
			if len(got.Records) == 0 && aws.ToInt64(got.MillisBehindLatest) == 0 || iter == nil {
				break
			}
		}
	}
	return out
}

// seqKey identifies a record of a stream by shard and sequence number.
func seqKey(shard, seq *string) string { return aws.ToString(shard) + "/" + aws.ToString(seq) }

// sentRecord is a plaintext record of the test and where it went.
type sentRecord struct {
	pk         string
	data       []byte
	single     bool   // sent with PutRecord, not PutRecords
	shard      string // ShardId that PutRecord(s) reported for the encrypted record
	plainShard string // the same for the plaintext copy
}

// payload returns the payload of record i, of the given size. A payload of
// 14 bytes or more starts with a marker naming the record, so that its
// presence in raw data can be searched for.
func payload(i, size int) []byte {
	p := make([]byte, size)
	rand.Read(p)
	copy(p, fmt.Sprintf("PAYLOAD-%04d-", i))
	return p
}

// TestIntegration produces ~200 encrypted records with PutRecords and
// PutRecord to a 4-shard stream on moto, with moto's KMS, and the same
// records in plaintext to another 4-shard stream; reads both back with
// GetRecords, checks that the raw encrypted records reveal neither payloads
// nor partition keys, decrypts and compares everything, and checks that
// every encrypted record landed on the shard, in the order, of its
// plaintext twin.
func TestIntegration(t *testing.T) {
	srv := emulatortest.Shared(t, emulator.Moto)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := srv.AWSConfig()
	kmsClient := kms.NewFromConfig(cfg)
	kin := kinesis.NewFromConfig(cfg)

	key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("ksse integration test")})
	require.NoError(t, err)
	keyARN := aws.ToString(key.KeyMetadata.Arn)
	enc, err := record.NewEncryptor(kmsClient, keyARN)
	require.NoError(t, err)
	defer enc.Close()

	encStream := createStream(ctx, t, kin, "ksse-it-enc", 4)
	plainStream := createStream(ctx, t, kin, "ksse-it-plain", 4)

	// Partition keys: 3 random ones per shard, none on a shard's
	// EndingHashKey.
	var pks []string
	perShard := map[string]int{}
	for len(pks) < 12 {
		var b [8]byte
		rand.Read(b[:])
		pk := fmt.Sprintf("cust-%x", b)
		h := hashkey.Of(pk)
		if encStream.isEndingHashKey(h) || plainStream.isEndingHashKey(h) || perShard[encStream.shardOf(t, h)] == 3 {
			continue
		}
		perShard[encStream.shardOf(t, h)]++
		pks = append(pks, pk)
	}
	sizes := []int{0, 1, 13, 14, 100, 1000, 4096, 100 << 10}
	const n = 200
	recs := make([]sentRecord, n)
	for i := range recs {
		size := sizes[i%len(sizes)]
		if size == 100<<10 && i > 5*len(sizes) {
			size = 200 // five of ~100 KiB are enough
		}
		recs[i] = sentRecord{pk: pks[(i*7)%len(pks)], data: payload(i, size), single: i%33 == 5}
	}
	// Produce, in order: batches of up to 40 records, and the single
	// records with PutRecord between them. Every other batch names the
	// stream by ARN.
	// Sequence numbers are unique per shard only (on moto, small integers).
	bySeq := map[string]int{}      // encrypted stream: shard/sequence number → record
	plainBySeq := map[string]int{} // plaintext stream
	var batch []int
	batches := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		batches++
		in := &kinesis.PutRecordsInput{}
		plain := &kinesis.PutRecordsInput{StreamName: aws.String(plainStream.name)}
		if batches%2 == 0 {
			in.StreamName = aws.String(encStream.name)
		} else {
			in.StreamARN = aws.String(encStream.arn)
		}
		for _, i := range batch {
			entry := types.PutRecordsRequestEntry{PartitionKey: aws.String(recs[i].pk), Data: recs[i].data}
			in.Records = append(in.Records, entry)
			plain.Records = append(plain.Records, entry)
		}
		out, err := enc.PutRecords(ctx, kin, in)
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(out.FailedRecordCount))
		pout, err := kin.PutRecords(ctx, plain)
		require.NoError(t, err)
		require.Zero(t, aws.ToInt32(pout.FailedRecordCount))
		for j, i := range batch {
			recs[i].shard = aws.ToString(out.Records[j].ShardId)
			bySeq[seqKey(out.Records[j].ShardId, out.Records[j].SequenceNumber)] = i
			recs[i].plainShard = aws.ToString(pout.Records[j].ShardId)
			plainBySeq[seqKey(pout.Records[j].ShardId, pout.Records[j].SequenceNumber)] = i
		}
		batch = batch[:0]
	}
	for i, r := range recs {
		if !r.single {
			batch = append(batch, i)
			if len(batch) == 40 {
				flush()
			}
			continue
		}
		flush()
		out, err := enc.PutRecord(ctx, kin, &kinesis.PutRecordInput{
			StreamName: aws.String(encStream.name), PartitionKey: aws.String(r.pk), Data: r.data,
		})
		require.NoError(t, err)
		recs[i].shard = aws.ToString(out.ShardId)
		bySeq[seqKey(out.ShardId, out.SequenceNumber)] = i
		pout, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String(plainStream.name), PartitionKey: aws.String(r.pk), Data: r.data,
		})
		require.NoError(t, err)
		recs[i].plainShard = aws.ToString(pout.ShardId)
		plainBySeq[seqKey(pout.ShardId, pout.SequenceNumber)] = i
	}
	flush()
	require.Len(t, bySeq, n)
	require.Equal(t, uint64(1), enc.Stats().KMSCalls, "one GenerateDataKey for the whole run")

	raw := readAll(ctx, t, kin, encStream)
	require.Len(t, raw, 4)
	for shard, rs := range raw {
		require.NotEmpty(t, rs, "no record on %s", shard)
	}

	t.Run("RawRecordsRevealNothing", func(t *testing.T) {
		total := 0
		for shard, rs := range raw {
			for _, r := range rs {
				total++
				i, ok := bySeq[seqKey(&shard, r.SequenceNumber)]
				require.True(t, ok, "a record that was not sent, on %s", shard)
				require.Equal(t, record.OutboundPartitionKey, aws.ToString(r.PartitionKey))
				require.True(t, envelope.IsEnvelope(r.Data))
				require.False(t, bytes.Contains(r.Data, []byte("PAYLOAD-")), "record %d: a payload on the wire", i)
				require.False(t, bytes.Contains(r.Data, []byte("cust-")), "record %d: a partition key on the wire", i)
				if len(recs[i].data) >= 14 {
					require.False(t, bytes.Contains(r.Data, recs[i].data), "record %d: its payload on the wire", i)
				}
				require.Greater(t, len(r.Data), len(recs[i].data)+len(recs[i].pk)+envelope.Overhead, "record %d", i)
			}
		}
		require.Equal(t, n, total, "every record read back once")
	})

	t.Run("ShardPlacement", func(t *testing.T) {
		for shard, rs := range raw {
			for _, r := range rs {
				i := bySeq[seqKey(&shard, r.SequenceNumber)]
				require.Equal(t, encStream.shardOf(t, hashkey.Of(recs[i].pk)), shard, "record %d: not on the shard of its plaintext partition key", i)
				require.Equal(t, recs[i].shard, shard, "record %d", i)
				require.Equal(t, recs[i].plainShard, shard, "record %d: not on the shard of its plaintext twin", i)
			}
		}
		plainRaw := readAll(ctx, t, kin, plainStream)
		seen := 0
		for shard, rs := range plainRaw {
			for _, r := range rs {
				i, ok := plainBySeq[seqKey(&shard, r.SequenceNumber)]
				require.True(t, ok)
				require.Equal(t, recs[i].shard, shard, "record %d: encrypted and plaintext on different shards", i)
				require.Equal(t, recs[i].pk, aws.ToString(r.PartitionKey))
				seen++
			}
		}
		require.Equal(t, n, seen)
	})

	t.Run("Decrypt", func(t *testing.T) {
		// One consumer names the stream by ARN, one by name.
		for _, stream := range []string{encStream.arn, encStream.name} {
			dec, err := record.NewDecryptor(kmsClient, anyKey)
			require.NoError(t, err)
			defer dec.Close()
			got := 0
			for shard, rs := range raw {
				rs := cloneRecords(rs)
				require.NoError(t, dec.DecryptRecords(ctx, stream, rs))
				last := map[string]int{} // partition key → last record index seen on this shard
				for _, r := range rs {
					i := bySeq[seqKey(&shard, r.SequenceNumber)]
					require.Equal(t, recs[i].pk, aws.ToString(r.PartitionKey), "record %d", i)
					require.True(t, bytes.Equal(recs[i].data, r.Data), "record %d: payload differs", i)
					require.Equal(t, types.EncryptionTypeKms, r.EncryptionType)
					if prev, ok := last[recs[i].pk]; ok {
						require.Greater(t, i, prev, "on %s, records of partition key %s out of order", shard, recs[i].pk)
					}
					last[recs[i].pk] = i
					got++
				}
			}
			require.Equal(t, n, got)
			require.Equal(t, uint64(1), dec.Stats().KMSCalls, "one Decrypt for the whole stream")
		}
	})

	t.Run("StrictMode", func(t *testing.T) {
		other1, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
		other2, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
		otherARN1, otherARN2 := aws.ToString(other1.KeyMetadata.Arn), aws.ToString(other2.KeyMetadata.Arn)
		someShard := recs[0].shard
		some := cloneRecords(raw[someShard][:3])

		for _, tc := range []struct {
			name    string
			allowed []string
			want    error // nil: accepted
		}{
			{"right key", []string{keyARN}, nil},
			{"right key among others", []string{otherARN1, keyARN}, nil},
			{"other keys", []string{otherARN1, otherARN2}, keycache.ErrNotAllowed},
			// Each allowed key is sent as Decrypt's KeyId, and KMS itself
			// refuses the other key (AWS: IncorrectKeyException; moto:
			// AccessDeniedException without a message, read alike).
			{"other key", []string{otherARN1}, keycache.ErrNotAllowed},
		} {
			t.Run(tc.name, func(t *testing.T) {
				dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = tc.allowed })
				require.NoError(t, err)
				defer dec.Close()
				rs := cloneRecords(some)
				err = dec.DecryptRecords(ctx, encStream.name, rs)
				if tc.want == nil {
					require.NoError(t, err)
					for _, r := range rs {
						i := bySeq[seqKey(&someShard, r.SequenceNumber)]
						require.Equal(t, recs[i].data, r.Data)
					}
					return
				}
				var be *record.BatchError
				require.ErrorAs(t, err, &be)
				require.Equal(t, []int{0, 1, 2}, be.Indexes())
				for _, f := range be.Failed {
					require.ErrorIs(t, f.Err, tc.want)
					require.Nil(t, rs[f.Index].Data)
				}
			})
		}
	})

	t.Run("CopiedToAnotherStream", func(t *testing.T) {
		// Replay three encrypted records, byte for byte, on the plaintext
		// stream: moto's KMS refuses their data key for that stream's
		// encryption context, so they are not authentic there.
		src := raw[recs[0].shard][:3]
		copied := map[string]bool{}
		for _, r := range src {
			out, err := kin.PutRecord(ctx, &kinesis.PutRecordInput{
				StreamName: aws.String(plainStream.name), PartitionKey: r.PartitionKey, Data: r.Data,
				ExplicitHashKey: aws.String("1"),
			})
			require.NoError(t, err)
			copied[seqKey(out.ShardId, out.SequenceNumber)] = true
		}
		dec, err := record.NewDecryptor(kmsClient, anyKey, func(o *record.DecryptorOptions) { o.AllowPlaintext = true })
		require.NoError(t, err)
		defer dec.Close()
		var found int
		for shard, rs := range readAll(ctx, t, kin, plainStream) {
			err := dec.DecryptRecords(ctx, plainStream.name, rs)
			var failed map[int]error
			if err != nil {
				var be *record.BatchError
				require.ErrorAs(t, err, &be)
				failed = map[int]error{}
				for _, f := range be.Failed {
					failed[f.Index] = f.Err
				}
			}
			for j, r := range rs {
				if copied[seqKey(&shard, r.SequenceNumber)] {
					found++
					require.Equal(t, envelope.ErrOpen, failed[j], "a record copied from another stream")
					require.Nil(t, r.Data)
					continue
				}
				require.NoError(t, failed[j])
				require.Equal(t, types.EncryptionTypeNone, r.EncryptionType, "plaintext passed through")
			}
		}
		require.Equal(t, len(src), found)
		// The data key was refused by KMS, not merely by the envelope.
		require.Equal(t, map[string]uint64{"InvalidCiphertext": 1}, dec.Stats().Failures)
	})
}
