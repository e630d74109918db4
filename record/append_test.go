package record_test

import (
	"context"
	"crypto/fips140"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

func newAppendPair(t *testing.T, optFns ...func(*record.DecryptorOptions)) (*record.Encryptor, *record.Decryptor) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	allow := func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} }
	dec, err := record.NewDecryptor(k, append([]func(*record.DecryptorOptions){allow}, optFns...)...)
	require.NoError(t, err)
	t.Cleanup(func() { enc.Close(); dec.Close() })
	return enc, dec
}

func TestEncryptAppendDecryptAppend(t *testing.T) {
	ctx := context.Background()
	enc, dec := newAppendPair(t)

	// Two records appended to one buffer after a prefix that stays.
	buf := append(make([]byte, 0, 8192), "prefix"...)
	buf, r1, err := enc.EncryptAppend(ctx, buf, "s", "pk-1", []byte("one"))
	require.NoError(t, err)
	buf, r2, err := enc.EncryptAppend(ctx, buf, "s", "pk-2", []byte("two"))
	require.NoError(t, err)
	require.Equal(t, "prefix", string(buf[:6]))
	require.Equal(t, len(buf), 6+len(r1.Data)+len(r2.Data))
	require.Equal(t, len(r1.Data), cap(r1.Data), "Data is clipped: appending to it cannot overwrite the next record")
	require.Equal(t, hashkey.Of("pk-1"), r1.ExplicitHashKey)
	require.Equal(t, record.OutboundPartitionKey, r2.PartitionKey)

	// Failure: dst comes back unchanged.
	out, bad, err := enc.EncryptAppend(ctx, buf, "s", "", []byte("x"))
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.Equal(t, buf, out)
	require.Zero(t, bad)

	// Both decrypt, with Decrypt and into one reused buffer.
	pt := []byte("head")
	pt, d1, err := dec.DecryptAppend(ctx, pt, "s", r1.Data)
	require.NoError(t, err)
	pt, d2, err := dec.DecryptAppend(ctx, pt, "s", r2.Data)
	require.NoError(t, err)
	require.Equal(t, "head", string(pt[:4]))
	require.Equal(t, "one", string(d1.Data))
	require.Equal(t, "pk-1", d1.PartitionKey)
	require.Equal(t, "two", string(d2.Data))
	require.Equal(t, "pk-2", d2.PartitionKey)
	require.True(t, d2.Encrypted)
	pk := d1.PartitionKey
	clear(pt) // the caller reuses its buffer: the partition key is its own
	require.Equal(t, "pk-1", pk)

	d, err := dec.Decrypt(ctx, "s", r2.Data)
	require.NoError(t, err)
	require.Equal(t, "two", string(d.Data))
	require.Equal(t, "pk-2", d.PartitionKey)
	require.Equal(t, len(d.Data), cap(d.Data))

	// Tampered: ErrOpen, dst unchanged, nothing returned.
	tampered := append([]byte(nil), r1.Data...)
	tampered[envelope.HeaderSize+2+len("pk-1")+envelope.NonceSize] ^= 1 // the payload's ciphertext
	keep := []byte("keep")
	out, bad2, err := dec.DecryptAppend(ctx, keep, "s", tampered)
	require.ErrorIs(t, err, envelope.ErrOpen)
	require.Equal(t, "keep", string(out))
	require.Zero(t, bad2)
	// Another stream: not authentic.
	_, _, err = dec.DecryptAppend(ctx, nil, "other", r1.Data)
	require.ErrorIs(t, err, envelope.ErrOpen)
	// Plaintext: refused, or passed through as is with AllowPlaintext.
	_, _, err = dec.DecryptAppend(ctx, nil, "s", []byte("plain"))
	require.ErrorIs(t, err, record.ErrNotEncrypted)

	_, pass := newAppendPair(t, func(o *record.DecryptorOptions) { o.AllowPlaintext = true })
	out, pd, err := pass.DecryptAppend(ctx, keep, "s", []byte("plain"))
	require.NoError(t, err)
	require.Equal(t, "keep", string(out))
	require.Equal(t, "plain", string(pd.Data))
	require.False(t, pd.Encrypted)
}

// TestBatchBuffers checks the batches' shared buffers: every record of
// PutRecords and DecryptRecords is its own, clipped, and right.
func TestBatchBuffers(t *testing.T) {
	ctx := context.Background()
	enc, dec := newAppendPair(t)
	var in kinesis.PutRecordsInput
	in.StreamName = aws.String("s")
	for i := range 40 {
		in.Records = append(in.Records, kinesistypes.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("pk-%d", i)), Data: make([]byte, i*37)})
	}
	in.Records[7].ExplicitHashKey = aws.String("12345")
	client := &nopPutRecords{}
	var sent *kinesis.PutRecordsInput
	_, err := enc.PutRecords(ctx, putFunc(func(ctx context.Context, req *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
		sent = req
		return client.PutRecords(ctx, req, o...)
	}), &in)
	require.NoError(t, err)
	records := make([]kinesistypes.Record, len(sent.Records))
	for i, e := range sent.Records {
		require.Equal(t, len(e.Data), cap(e.Data), "record %d", i)
		want := hashkey.Of(fmt.Sprintf("pk-%d", i))
		if i == 7 {
			want = "12345"
		}
		require.Equal(t, want, aws.ToString(e.ExplicitHashKey), "record %d", i)
		require.Equal(t, record.OutboundPartitionKey, aws.ToString(e.PartitionKey))
		records[i] = kinesistypes.Record{Data: e.Data, PartitionKey: e.PartitionKey}
	}
	records[3].Data = []byte("not an envelope")
	err = dec.DecryptRecords(ctx, "s", records)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Failed, 1)
	require.Equal(t, 3, be.Failed[0].Index)
	for i, r := range records {
		if i == 3 {
			require.Nil(t, r.Data)
			continue
		}
		require.Equal(t, make([]byte, i*37), r.Data, "record %d", i)
		require.Equal(t, len(r.Data), cap(r.Data), "record %d", i)
		require.Equal(t, fmt.Sprintf("pk-%d", i), aws.ToString(r.PartitionKey))
		require.Equal(t, kinesistypes.EncryptionTypeKms, r.EncryptionType)
	}
	// Writing one record's plaintext leaves the others.
	records[1].Data = append(records[1].Data, 0xff)
	records[0].Data = append(records[0].Data, 0xff)
	require.Equal(t, "pk-2", aws.ToString(records[2].PartitionKey))
	require.Equal(t, make([]byte, 2*37), records[2].Data)
}

type putFunc func(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)

func (f putFunc) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, o ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return f(ctx, in, o...)
}

// TestAppendAllocations: the append forms allocate the record key's cipher
// (2) and the one string they return, and a batch two per record plus a
// bounded number for the batch.
func TestAppendAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	if fips140.Enabled() {
		t.Skip("FIPS 140-3 mode allocates more per record (see envelope)")
	}
	ctx := context.Background()
	enc, dec := newAppendPair(t)
	payload := make([]byte, 1<<10)
	buf := make([]byte, 0, 4096)
	_, r, err := enc.EncryptAppend(ctx, buf, "s", "user-1", payload)
	require.NoError(t, err)
	encAllocs := testing.AllocsPerRun(100, func() { _, _, _ = enc.EncryptAppend(ctx, buf[:0], "s", "user-1", payload) })
	sealed1 := append([]byte(nil), r.Data...)
	decAllocs := testing.AllocsPerRun(100, func() { _, _, _ = dec.DecryptAppend(ctx, buf[:0], "s", sealed1) })
	t.Logf("allocations: EncryptAppend %.0f, DecryptAppend %.0f", encAllocs, decAllocs)
	require.LessOrEqual(t, encAllocs, 3.0)
	require.LessOrEqual(t, decAllocs, 3.0)

	const n = 100
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s")}
	for i := range n {
		in.Records = append(in.Records, kinesistypes.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("user-%d", i)), Data: payload})
	}
	var sealed [][]byte
	client := putFunc(func(_ context.Context, req *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
		sealed = sealed[:0]
		out := &kinesis.PutRecordsOutput{Records: make([]kinesistypes.PutRecordsResultEntry, len(req.Records))}
		for i, e := range req.Records {
			sealed = append(sealed, e.Data)
			out.Records[i].SequenceNumber = aws.String("1")
		}
		return out, nil
	})
	_, err = enc.PutRecords(ctx, client, in)
	require.NoError(t, err)
	putAllocs := testing.AllocsPerRun(20, func() { _, _ = enc.PutRecords(ctx, client, in) })
	records := make([]kinesistypes.Record, n)
	batchAllocs := testing.AllocsPerRun(20, func() {
		for i := range records {
			records[i] = kinesistypes.Record{Data: sealed[i]}
		}
		_ = dec.DecryptRecords(ctx, "s", records)
	})
	t.Logf("allocations per batch of %d: PutRecords %.0f (the client %d), DecryptRecords %.0f", n, putAllocs, n+2, batchAllocs)
	require.LessOrEqual(t, putAllocs, float64(2*n+(n+2)+16))
	require.LessOrEqual(t, batchAllocs, float64(2*n+16))
}
