package record_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// anyKey makes a Decryptor trust every KMS key and lifts its KMS rate
// limit, for the tests that are about neither.
func anyKey(o *record.DecryptorOptions) { o.InsecureAllowAnyKey = true; o.DecryptRate = -1 }

// newPair returns a fake KMS with one key, and an Encryptor and a Decryptor
// (allowing that key) of it.
func newPair(t testing.TB, decFns ...func(*record.DecryptorOptions)) (*kmsfake.KMS, string, *record.Encryptor, *record.Decryptor) {
	t.Helper()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	allow := func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} }
	dec, err := record.NewDecryptor(k, append([]func(*record.DecryptorOptions){allow}, decFns...)...)
	require.NoError(t, err)
	t.Cleanup(func() { enc.Close(); dec.Close() })
	return k, arn, enc, dec
}

func TestEncryptDecrypt(t *testing.T) {
	ctx := context.Background()
	_, arn, enc, dec := newPair(t)
	r, err := enc.Encrypt(ctx, "orders", "customer-42", []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, record.OutboundPartitionKey, r.PartitionKey)
	require.Equal(t, hashkey.Of("customer-42"), r.ExplicitHashKey)
	require.False(t, bytes.Contains(r.Data, []byte("customer-42")))
	require.False(t, bytes.Contains(r.Data, []byte("hello")))

	// By name or by ARN: the same stream.
	d, err := dec.Decrypt(ctx, "arn:aws:kinesis:us-east-1:111122223333:stream/orders", r.Data)
	require.NoError(t, err)
	require.Equal(t, "customer-42", d.PartitionKey)
	require.Equal(t, "hello", string(d.Data))
	require.True(t, d.Encrypted)
	require.Equal(t, arn, d.KeyARN)

	// By the ARN of an enhanced fan-out consumer of the stream.
	d, err = dec.Decrypt(ctx, "arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/app:1700000000", r.Data)
	require.NoError(t, err)
	require.Equal(t, "hello", string(d.Data))

	// Another stream: not authentic.
	_, err = dec.Decrypt(ctx, "payments", r.Data)
	require.Equal(t, envelope.ErrOpen, err)
}

func TestPlaintextRecords(t *testing.T) {
	ctx := context.Background()
	_, _, _, dec := newPair(t)
	_, err := dec.Decrypt(ctx, "s", []byte(`{"plain":true}`))
	require.ErrorIs(t, err, record.ErrNotEncrypted)

	_, _, _, lax := newPair(t, func(o *record.DecryptorOptions) { o.AllowPlaintext = true })
	d, err := lax.Decrypt(ctx, "s", []byte(`{"plain":true}`))
	require.NoError(t, err)
	require.False(t, d.Encrypted)
	require.Equal(t, `{"plain":true}`, string(d.Data))
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	k, _, enc, _ := newPair(t)
	for _, tc := range []struct {
		stream, pk string
		data       []byte
		want       error
	}{
		{"", "pk", nil, record.ErrInvalidInput},
		{"bad name", "pk", nil, record.ErrInvalidInput},
		{"arn:aws:kinesis:us-east-1:1:deliverystream/x", "pk", nil, record.ErrInvalidInput},
		{strings.Repeat("s", 129), "pk", nil, record.ErrInvalidInput},
		{"s", "", nil, record.ErrInvalidInput},
		{"s", strings.Repeat("é", 257), nil, record.ErrInvalidInput},
		{"s", "\xff", nil, record.ErrInvalidInput},
		{"s", "pk", make([]byte, 1<<20), record.ErrRecordTooLarge},
	} {
		_, err := enc.Encrypt(ctx, tc.stream, tc.pk, tc.data)
		require.ErrorIs(t, err, tc.want, "%q %q %d", tc.stream, tc.pk, len(tc.data))
	}
	require.Zero(t, k.Calls("GenerateDataKey"), "validation must come before any KMS call")
	_, err := enc.Encrypt(ctx, "s", strings.Repeat("é", 256), nil)
	require.NoError(t, err)
}

// fakeKinesis records what would be sent and fails the records it is told
// to.
type fakeKinesis struct {
	got    []*kinesis.PutRecordsInput
	failAt map[int]bool
}

func (f *fakeKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.got = append(f.got, in)
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0)}
	for i := range in.Records {
		if f.failAt[i] {
			out.Records = append(out.Records, types.PutRecordsResultEntry{
				ErrorCode: aws.String("ProvisionedThroughputExceededException"), ErrorMessage: aws.String("slow down")})
			*out.FailedRecordCount++
			continue
		}
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-0")})
	}
	return out, nil
}

func TestPutRecordsPartialFailure(t *testing.T) {
	ctx := context.Background()
	_, _, enc, dec := newPair(t)
	f := &fakeKinesis{failAt: map[int]bool{1: true}}
	in := &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("one")},
		{PartitionKey: aws.String("b"), Data: []byte("two")},
		{PartitionKey: aws.String("c"), Data: []byte("three")},
	}}
	out, err := enc.PutRecords(ctx, f, in)
	require.NotNil(t, out)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{1}, be.Indexes())
	var se *record.ServiceError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "ProvisionedThroughputExceededException", se.Code)
	// The caller's input is untouched and still holds the plaintext.
	require.Equal(t, "two", string(in.Records[be.Failed[0].Index].Data))

	require.Len(t, f.got, 1)
	for i, r := range f.got[0].Records {
		require.Equal(t, record.OutboundPartitionKey, *r.PartitionKey)
		require.Equal(t, hashkey.Of(*in.Records[i].PartitionKey), *r.ExplicitHashKey)
		d, err := dec.Decrypt(ctx, "orders", r.Data)
		require.NoError(t, err)
		require.Equal(t, string(in.Records[i].Data), string(d.Data))
	}
}

func TestPutRecordsFailsClosed(t *testing.T) {
	ctx := context.Background()
	k, arn, enc, _ := newPair(t)
	require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateDisabled))
	f := &fakeKinesis{}
	_, err := enc.PutRecords(ctx, f, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("one")},
		{PartitionKey: aws.String("b"), Data: []byte("two")},
	}})
	require.ErrorIs(t, err, kmsiface.ErrKeyDisabled)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{0, 1}, be.Indexes())
	require.Empty(t, f.got, "nothing may be sent when encryption fails")
}

func TestDecryptRecords(t *testing.T) {
	ctx := context.Background()
	_, _, enc, dec := newPair(t)
	good, err := enc.Encrypt(ctx, "s", "pk", []byte("payload"))
	require.NoError(t, err)
	tamperedBody := bytes.Clone(good.Data)
	tamperedBody[envelope.HeaderSize+3] ^= 1
	tamperedKey := bytes.Clone(good.Data)
	tamperedKey[len(tamperedKey)-5] ^= 1
	recs := []types.Record{
		{Data: good.Data, PartitionKey: aws.String(good.PartitionKey)},
		{Data: tamperedBody, PartitionKey: aws.String(good.PartitionKey)},
		{Data: []byte("plain"), PartitionKey: aws.String("p")},
		{Data: tamperedKey, PartitionKey: aws.String(good.PartitionKey)},
	}
	err = dec.DecryptRecords(ctx, "s", recs)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{1, 2, 3}, be.Indexes())
	require.Equal(t, envelope.ErrOpen, be.Failed[0].Err)
	require.ErrorIs(t, be.Failed[1].Err, record.ErrNotEncrypted)
	require.Equal(t, envelope.ErrOpen, be.Failed[2].Err, "a refused wrapped key is an authentication failure too")
	require.Nil(t, recs[3].Data)
	require.Equal(t, "payload", string(recs[0].Data))
	require.Equal(t, "pk", *recs[0].PartitionKey)
	require.Equal(t, types.EncryptionTypeKms, recs[0].EncryptionType)
	require.Nil(t, recs[1].Data)
	require.Nil(t, recs[2].Data)
	require.True(t, errors.Is(err, envelope.ErrOpen))
}

func TestSetKeyID(t *testing.T) {
	ctx := context.Background()
	k, arn1, enc, _ := newPair(t)
	dec, err := record.NewDecryptor(k, anyKey)
	require.NoError(t, err)
	defer dec.Close()
	r1, err := enc.Encrypt(ctx, "s", "pk", []byte("under key 1"))
	require.NoError(t, err)

	_, asym := k.CreateKey(kmstypes.KeySpecRsa2048)
	err = enc.SetKeyID(ctx, asym)
	require.ErrorIs(t, err, kmsiface.ErrInvalidKey)
	require.Equal(t, arn1, enc.KeyID(), "a failed switch keeps the key")

	_, disabled := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	require.NoError(t, k.SetKeyState(disabled, kmstypes.KeyStateDisabled))
	require.ErrorIs(t, enc.SetKeyID(ctx, disabled), kmsiface.ErrKeyDisabled)
	require.ErrorIs(t, enc.SetKeyID(ctx, "alias/nope"), kmsiface.ErrKeyNotFound)

	// Still sealing under key 1.
	r, err := enc.Encrypt(ctx, "s", "pk", []byte("still key 1"))
	require.NoError(t, err)
	d, err := dec.Decrypt(ctx, "s", r.Data)
	require.NoError(t, err)
	require.Equal(t, arn1, d.KeyARN)

	_, arn2 := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	require.NoError(t, enc.SetKeyID(ctx, arn2))
	require.Equal(t, arn2, enc.KeyID())
	r2, err := enc.Encrypt(ctx, "s", "pk", []byte("under key 2"))
	require.NoError(t, err)
	for _, c := range []struct {
		data []byte
		arn  string
	}{{r1.Data, arn1}, {r2.Data, arn2}} {
		d, err := dec.Decrypt(ctx, "s", c.data)
		require.NoError(t, err)
		require.Equal(t, c.arn, d.KeyARN)
	}
}

// inconsistentKinesis answers PutRecords with a response that does not
// account for every record.
type inconsistentKinesis struct{ short bool }

func (f *inconsistentKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	out := &kinesis.PutRecordsOutput{}
	n := len(in.Records)
	if f.short {
		n--
	}
	for i := range n {
		e := types.PutRecordsResultEntry{SequenceNumber: aws.String("1")}
		if i == 0 && !f.short {
			e = types.PutRecordsResultEntry{ErrorCode: aws.String("InternalFailure")} // and no FailedRecordCount
		}
		out.Records = append(out.Records, e)
	}
	return out, nil
}

func TestPutRecordsTrustsPerRecordResults(t *testing.T) {
	ctx := context.Background()
	_, _, enc, _ := newPair(t)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("1")}, {PartitionKey: aws.String("b"), Data: []byte("2")}}}
	var be *record.BatchError
	_, err := enc.PutRecords(ctx, &inconsistentKinesis{}, in)
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{0}, be.Indexes())
	_, err = enc.PutRecords(ctx, &inconsistentKinesis{short: true}, in)
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{0, 1}, be.Indexes())
}

func TestDecryptRecordsOneKMSCallPerFailingKey(t *testing.T) {
	ctx := context.Background()
	k, arn, enc, _ := newPair(t)
	var recs []types.Record
	for i := range 20 {
		r, err := enc.Encrypt(ctx, "s", fmt.Sprint(i), []byte("x"))
		require.NoError(t, err)
		recs = append(recs, types.Record{Data: r.Data})
	}
	require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateDisabled))
	dec, err := record.NewDecryptor(k, anyKey)
	require.NoError(t, err)
	defer dec.Close()
	before := k.Calls("Decrypt")
	err = dec.DecryptRecords(ctx, "s", recs)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Failed, 20)
	require.ErrorIs(t, err, kmsiface.ErrKeyDisabled)
	require.Equal(t, int64(1), k.Calls("Decrypt")-before, "one KMS call for the batch's one wrapped key")
}

// TestDecryptRecordsAfterContextEnds: in a batch whose context has ended,
// the records of data keys not cached (as an attacker who floods a stream
// would write, one data key each) fail with the context's error and start
// no KMS call; a record whose data key is cached still decrypts.
func TestDecryptRecordsAfterContextEnds(t *testing.T) {
	k, arn, enc0, _ := newPair(t)
	cached, err := enc0.Encrypt(context.Background(), "s", "cached", []byte("still decrypts"))
	require.NoError(t, err)
	recs := []types.Record{{Data: cached.Data}}
	for i := range 50 {
		enc, err := record.NewEncryptor(k, arn) // a new data key each
		require.NoError(t, err)
		r, err := enc.Encrypt(context.Background(), "s", fmt.Sprint(i), []byte("x"))
		require.NoError(t, err)
		require.NoError(t, enc.Close())
		recs = append(recs, types.Record{Data: r.Data})
	}
	dec, err := record.NewDecryptor(k, anyKey)
	require.NoError(t, err)
	defer dec.Close()
	_, err = dec.Decrypt(context.Background(), "s", cached.Data)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := k.Calls("Decrypt")
	err = dec.DecryptRecords(ctx, "s", recs)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Failed, 50)
	for _, f := range be.Failed {
		require.NotZero(t, f.Index)
		require.ErrorIs(t, f.Err, context.Canceled)
		require.Nil(t, recs[f.Index].Data)
	}
	require.Zero(t, k.Calls("Decrypt")-before)
	require.Equal(t, "still decrypts", string(recs[0].Data))
}

// TestPutRecordsValidatesBeforeKMS: a batch with a caller mistake in its
// last entry is refused whole before any KMS call, the faulty entries with
// their reason and the others with ErrNotSent.
func TestPutRecordsValidatesBeforeKMS(t *testing.T) {
	ctx := context.Background()
	for name, bad := range map[string]types.PutRecordsRequestEntry{
		"empty partition key": {PartitionKey: aws.String(""), Data: []byte("x")},
		"oversized":           {PartitionKey: aws.String("z"), Data: make([]byte, 1<<20)},
	} {
		t.Run(name, func(t *testing.T) {
			k, _, enc, _ := newPair(t)
			f := &fakeKinesis{}
			_, err := enc.PutRecords(ctx, f, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
				{PartitionKey: aws.String("a"), Data: []byte("one")},
				{PartitionKey: aws.String("b"), Data: []byte("two")},
				bad,
			}})
			var be *record.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, []int{0, 1, 2}, be.Indexes())
			require.ErrorIs(t, be.Failed[0].Err, record.ErrNotSent)
			require.ErrorIs(t, be.Failed[1].Err, record.ErrNotSent)
			require.True(t, errors.Is(be.Failed[2].Err, record.ErrInvalidInput) || errors.Is(be.Failed[2].Err, record.ErrRecordTooLarge), "%v", be.Failed[2].Err)
			require.Zero(t, k.Calls("GenerateDataKey"), "no KMS call for a batch that cannot be sent")
			require.Empty(t, f.got)
		})
	}
}

// TestOpenInvalidEnvelope: an envelope whose header claims sizes Parse
// never accepts fails with ErrOpen before any KMS call for its wrapped key.
func TestOpenInvalidEnvelope(t *testing.T) {
	k, _, _, dec := newPair(t)
	raw := func(wkLen, bodyLen, have int) []byte {
		b := binary.BigEndian.AppendUint16([]byte("\xe5KS\x01"), uint16(wkLen))
		b = binary.BigEndian.AppendUint32(b, uint32(bodyLen))
		return append(b, make([]byte, envelope.SaltSize+have)...)
	}
	for name, data := range map[string][]byte{
		"huge wrapped key": raw(envelope.MaxWrappedKeySize+1, 64, 64+envelope.MaxWrappedKeySize+1),
		"no wrapped key":   raw(0, 64, 64),
		"truncated":        raw(1, 64, 10),
		"short body":       raw(1, 5, 6),
	} {
		out, d, err := dec.DecryptFirehose(context.Background(), []byte("dst"), "orders", data)
		require.Equal(t, envelope.ErrOpen, err, name)
		require.Equal(t, "dst", string(out))
		require.Zero(t, d)
	}
	require.Zero(t, k.Calls("Decrypt"))
}

// TestPutRecordsMaxBytesPerKey: a payload larger than the key cache's
// MaxBytesPerKey is a caller mistake like an oversized record: reported
// before any KMS call, the other entries ErrNotSent.
func TestPutRecordsMaxBytesPerKey(t *testing.T) {
	k, arn, _, _ := newPair(t)
	enc, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) { o.MaxBytesPerKey = 100 })
	require.NoError(t, err)
	defer enc.Close()
	f := &fakeKinesis{}
	_, err = enc.PutRecords(context.Background(), f, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: make([]byte, 10)},
		{PartitionKey: aws.String("b"), Data: make([]byte, 200)},
		{PartitionKey: aws.String("c"), Data: make([]byte, 10)},
	}})
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{0, 1, 2}, be.Indexes())
	require.ErrorIs(t, be.Failed[0].Err, record.ErrNotSent)
	require.ErrorIs(t, be.Failed[1].Err, record.ErrRecordTooLarge)
	require.ErrorIs(t, be.Failed[2].Err, record.ErrNotSent)
	require.Zero(t, k.Calls("GenerateDataKey"))
	require.Empty(t, f.got)
	_, err = enc.Encrypt(context.Background(), "orders", "b", make([]byte, 200))
	require.ErrorIs(t, err, record.ErrRecordTooLarge)
}

// slowDescribe is a KMS whose DescribeKey waits until release is closed.
type slowDescribe struct {
	*kmsfake.KMS
	entered chan struct{}
	release chan struct{}
}

func (s *slowDescribe) DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.KMS.DescribeKey(ctx, in, optFns...)
}

// TestSetKeyIDWhileSwitching: a second SetKeyID while one is validating
// fails at once, and the first one completes.
func TestSetKeyIDWhileSwitching(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	_, arn1 := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, arn2 := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	slow := &slowDescribe{KMS: k, entered: make(chan struct{}), release: make(chan struct{})}
	enc, err := record.NewEncryptor(slow, arn1)
	require.NoError(t, err)
	defer enc.Close()

	done := make(chan error, 1)
	go func() { done <- enc.SetKeyID(ctx, arn2) }()
	<-slow.entered
	require.ErrorIs(t, enc.SetKeyID(ctx, arn1), record.ErrInvalidInput)
	require.ErrorContains(t, enc.SetKeyID(ctx, arn1), "already in progress")
	require.Equal(t, arn1, enc.KeyID(), "the key changes only once validated")
	close(slow.release)
	require.NoError(t, <-done)
	require.Equal(t, arn2, enc.KeyID())
}
