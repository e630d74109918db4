package ksse_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse"
	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

// fakeKinesis is an in-memory Kinesis data plane speaking the SDK's wire
// protocol (JSON 1.1): PutRecord, PutRecords, GetShardIterator and
// GetRecords, on streams of one shard that exist as soon as they are named.
// It is an http.Handler, and an aws.HTTPClient that serves requests without
// a network. It records every request's operation, body and User-Agent.
type fakeKinesis struct {
	mu        sync.Mutex
	streams   map[string][]wireRecord // stream name → records
	iterators map[string]iteratorPos
	nextIt    int
	requests  []fakeRequest
	// failPut, if set, decides per PutRecords entry (by index) whether it is
	// rejected with ProvisionedThroughputExceededException.
	failPut func(i int) bool
	// discard makes it keep no records or requests (for benchmarks).
	discard bool
}

type fakeRequest struct {
	Op        string
	UserAgent string
	Body      []byte
}

type iteratorPos struct {
	stream string
	pos    int
}

// wireRecord is a record as the fake stores it and as GetRecords returns it.
type wireRecord struct {
	Data            []byte `json:"Data"`
	PartitionKey    string `json:"PartitionKey"`
	SequenceNumber  string `json:"SequenceNumber"`
	ExplicitHashKey string `json:"-"`
}

func newFakeKinesis() *fakeKinesis {
	return &fakeKinesis{streams: map[string][]wireRecord{}, iterators: map[string]iteratorPos{}}
}

const fakeShardID = "shardId-000000000000"

// Do serves req in process.
func (f *fakeKinesis) Do(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	return rec.Result(), nil
}

func (f *fakeKinesis) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.discard {
		f.requests = append(f.requests, fakeRequest{Op: op, UserAgent: r.Header.Get("User-Agent"), Body: body})
	}
	var in struct {
		StreamName, StreamARN, PartitionKey, ExplicitHashKey, ShardIterator string
		Data                                                                []byte
		Records                                                             []struct {
			Data                          []byte
			PartitionKey, ExplicitHashKey string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fakeError(w, "SerializationException", err.Error())
		return
	}
	stream := in.StreamName
	if in.StreamARN != "" && stream == "" {
		stream = in.StreamARN[strings.LastIndex(in.StreamARN, "/")+1:]
	}
	var out any
	switch op {
	case "PutRecord":
		out = map[string]string{"ShardId": fakeShardID, "SequenceNumber": f.append(stream, in.Data, in.PartitionKey, in.ExplicitHashKey)}
	case "PutRecords":
		type entry struct {
			SequenceNumber, ShardId, ErrorCode, ErrorMessage string `json:",omitempty"`
		}
		var entries []entry
		failed := 0
		for i, r := range in.Records {
			if f.failPut != nil && f.failPut(i) {
				failed++
				entries = append(entries, entry{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "slow down"})
				continue
			}
			entries = append(entries, entry{ShardId: fakeShardID, SequenceNumber: f.append(stream, r.Data, r.PartitionKey, r.ExplicitHashKey)})
		}
		out = map[string]any{"FailedRecordCount": failed, "Records": entries}
	case "GetShardIterator":
		out = map[string]string{"ShardIterator": f.iterator(stream, 0)}
	case "GetRecords":
		p, ok := f.iterators[in.ShardIterator]
		if !ok {
			fakeError(w, "ExpiredIteratorException", "unknown iterator")
			return
		}
		recs := f.streams[p.stream][p.pos:]
		out = map[string]any{
			"Records":            recs,
			"NextShardIterator":  f.iterator(p.stream, p.pos+len(recs)),
			"MillisBehindLatest": 0,
		}
	default:
		fakeError(w, "UnknownOperationException", op)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func (f *fakeKinesis) append(stream string, data []byte, pk, ehk string) string {
	seq := strconv.Itoa(len(f.streams[stream]) + 1)
	if f.discard {
		return seq
	}
	f.streams[stream] = append(f.streams[stream], wireRecord{Data: data, PartitionKey: pk, SequenceNumber: seq, ExplicitHashKey: ehk})
	return seq
}

func (f *fakeKinesis) iterator(stream string, pos int) string {
	f.nextIt++
	it := fmt.Sprintf("iterator-%d", f.nextIt)
	f.iterators[it] = iteratorPos{stream, pos}
	return it
}

func fakeError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// stored returns a copy of the records of stream as they are on the wire.
func (f *fakeKinesis) stored(stream string) []wireRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wireRecord(nil), f.streams[stream]...)
}

// ops returns the operations received, in order.
func (f *fakeKinesis) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ops []string
	for _, r := range f.requests {
		ops = append(ops, r.Op)
	}
	return ops
}

func (f *fakeKinesis) userAgents() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var uas []string
	for _, r := range f.requests {
		uas = append(uas, r.UserAgent)
	}
	return uas
}

// fakeClientOptions returns the options of a client of f, in process.
func fakeClientOptions(f *fakeKinesis) kinesis.Options {
	return kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://kinesis.invalid"),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			// A secret of 14 bytes or more: SigV4 under fips140=only.
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "fake-secret-access-key"}, nil
		}),
		HTTPClient: f,
	}
}

// newKMSPair returns an Encryptor and a Decryptor on a fresh test KMS.
func newKMSPair(t testing.TB) (*kmsfake.KMS, *record.Encryptor, *record.Decryptor) {
	t.Helper()
	k, enc, dec, _ := newKMS(t)
	return k, enc, dec
}

// newKMS returns an Encryptor and a Decryptor on a fresh test KMS, and the
// ARN of its key.
func newKMS(t testing.TB) (*kmsfake.KMS, *record.Encryptor, *record.Decryptor, string) {
	t.Helper()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	t.Cleanup(func() {
		enc.Close()
		dec.Close()
	})
	return k, enc, dec, arn
}

func TestMain(m *testing.M) { emulatortest.Main(m) }

// TestRoundTrip writes through a client with WithEncryption and reads back
// through it: the application sees plaintext, the stream sees envelopes.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))

	in := &kinesis.PutRecordsInput{
		StreamName: aws.String("orders"),
		Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("customer-1"), Data: []byte("first")},
			{PartitionKey: aws.String("customer-2"), Data: []byte("second"), ExplicitHashKey: aws.String("42")},
			{PartitionKey: aws.String("customer-1"), Data: []byte{}},
		},
	}
	orig := clonePutRecords(in)
	out, err := client.PutRecords(ctx, in)
	require.NoError(t, err)
	require.EqualValues(t, 0, aws.ToInt32(out.FailedRecordCount))
	require.Len(t, out.Records, 3)
	require.Equal(t, orig, in, "the caller's input was modified")

	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{
		StreamARN:    aws.String("arn:aws:kinesis:us-east-1:111122223333:stream/orders"),
		PartitionKey: aws.String("customer-3"), Data: []byte("third"),
	})
	require.NoError(t, err)

	// On the wire: envelopes, the outbound partition key, and the hash key
	// of the plaintext partition key unless the caller set one.
	wire := f.stored("orders")
	require.Len(t, wire, 4)
	wantEHK := []string{hashkey.Of("customer-1"), "42", hashkey.Of("customer-1"), hashkey.Of("customer-3")}
	for i, r := range wire {
		require.True(t, envelope.IsEnvelope(r.Data), "record %d is not an envelope", i)
		require.Equal(t, record.OutboundPartitionKey, r.PartitionKey)
		require.Equal(t, wantEHK[i], r.ExplicitHashKey, "record %d", i)
		require.NotContains(t, string(r.Data), "customer")
	}
	require.NotContains(t, string(wire[0].Data), "first")

	// Read back: the iterator from GetShardIterator names the stream, and
	// the next iterator keeps it.
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("orders"), ShardId: aws.String(fakeShardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Equal(t, []string{"customer-1:first", "customer-2:second", "customer-1:", "customer-3:third"}, texts(got.Records))
	for _, r := range got.Records {
		require.Equal(t, types.EncryptionTypeKms, r.EncryptionType)
	}

	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("p"), Data: []byte("fourth")})
	require.NoError(t, err)
	got, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: got.NextShardIterator})
	require.NoError(t, err)
	require.Equal(t, []string{"p:fourth"}, texts(got.Records))
}

// TestGetRecordsStream checks how GetRecords learns its stream: from
// StreamARN, from the client's iterators, or not at all (an error, and
// nothing sent).
func TestGetRecordsStream(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	plain := kinesis.New(fakeClientOptions(f))
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))
	_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("v")})
	require.NoError(t, err)

	// An iterator from another client: unknown stream, no request.
	it, err := plain.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("orders"), ShardId: aws.String(fakeShardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	before := len(f.ops())
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.ErrorIs(t, err, ksse.ErrUnknownStream)
	require.Len(t, f.ops(), before, "GetRecords was sent with an unknown stream")

	// With StreamARN: known.
	got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{
		ShardIterator: it.ShardIterator, StreamARN: aws.String("arn:aws:kinesis:us-east-1:111122223333:stream/orders"),
	})
	require.NoError(t, err)
	require.Equal(t, []string{"k:v"}, texts(got.Records))
	// ... and so is the next iterator.
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: got.NextShardIterator})
	require.NoError(t, err)

	// A StreamARN that names another stream: the records do not
	// authenticate there.
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{
		ShardIterator: it.ShardIterator, StreamARN: aws.String("arn:aws:kinesis:us-east-1:111122223333:stream/payments"),
	})
	require.ErrorIs(t, err, envelope.ErrOpen)

	// An invalid StreamARN: refused before sending.
	before = len(f.ops())
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, StreamARN: aws.String("arn:aws:sqs:us-east-1:1:queue")})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "is not a kinesis ARN")
	require.Len(t, f.ops(), before)
}

// TestGetRecordsFailures checks what a caller sees when records fail to
// decrypt: an error, the other records decrypted, the failed ones without
// data, and the next iterator.
func TestGetRecordsFailures(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	plain := kinesis.New(fakeClientOptions(f))
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))

	good, err := enc.Encrypt(ctx, "orders", "pk-good", []byte("good"))
	require.NoError(t, err)
	tampered, err := enc.Encrypt(ctx, "orders", "pk-bad", []byte("secret payload"))
	require.NoError(t, err)
	tampered.Data[len(tampered.Data)/2] ^= 1
	other, err := enc.Encrypt(ctx, "payments", "pk-moved", []byte("moved"))
	require.NoError(t, err)
	for _, d := range [][]byte{good.Data, tampered.Data, []byte("plaintext"), other.Data, good.Data} {
		_, err := plain.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("ksse"), Data: d})
		require.NoError(t, err)
	}

	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("orders"), ShardId: aws.String(fakeShardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.Error(t, err)
	require.Nil(t, out, "the SDK returns no output with an error")

	var gre *ksse.GetRecordsError
	require.ErrorAs(t, err, &gre)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{1, 2, 3}, be.Indexes())
	require.ErrorIs(t, err, envelope.ErrOpen)
	require.ErrorIs(t, err, record.ErrNotEncrypted)
	require.NotContains(t, err.Error(), "secret")

	recs := gre.Output.Records
	require.Len(t, recs, 5)
	for _, i := range []int{1, 2, 3} {
		require.Nil(t, recs[i].Data, "failed record %d carries data", i)
	}
	require.Equal(t, "pk-good:good", text(recs[0]))
	require.Equal(t, "pk-good:good", text(recs[4]))
	require.NotNil(t, gre.Output.NextShardIterator)

	// The caller may skip them: the next iterator's stream is known.
	_, err = plain.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("ksse"), Data: good.Data})
	require.NoError(t, err)
	out, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: gre.Output.NextShardIterator})
	require.NoError(t, err)
	require.Equal(t, []string{"pk-good:good"}, texts(out.Records))
}

// TestPutFailClosed checks that nothing is sent when a record cannot be
// encrypted.
func TestPutFailClosed(t *testing.T) {
	ctx := context.Background()
	k, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))

	// KMS down (before any data key is cached).
	k.SetFaultFunc(func(op string) *kmsfake.Fault {
		if op == "GenerateDataKey" {
			return &kmsfake.Fault{Code: "KMSInternalException"}
		}
		return nil
	})
	_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.Error(t, err)
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	require.Error(t, err)
	k.SetFaultFunc(nil)

	// An invalid partition key in one entry: the batch is not sent.
	_, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String("orders"),
		Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("ok"), Data: []byte("a")},
			{PartitionKey: aws.String(""), Data: []byte("b")},
		},
	})
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorIs(t, err, record.ErrNotSent)

	// Too large once encrypted.
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: make([]byte, record.DefaultMaxRecordSize)})
	require.ErrorIs(t, err, record.ErrRecordTooLarge)

	// A client without an Encryptor does not send plaintext.
	consumer := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(nil, dec))
	_, err = consumer.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "nil Encryptor: refusing to send records in plaintext")
	_, err = consumer.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "nil Encryptor: refusing to send records in plaintext")

	require.Empty(t, f.ops(), "a request was sent")

	// A client without a Decryptor does not return ciphertext as records.
	producer := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, nil))
	_, err = producer.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("x"), StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/orders")})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "nil Decryptor: refusing to return records undecrypted")
	require.Empty(t, f.ops())
}

// TestPutRecordsPartialFailure checks that records Kinesis rejects are
// reported as the SDK reports them, by index, and that the caller can retry
// its own entries.
func TestPutRecordsPartialFailure(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	f.failPut = func(i int) bool { return i == 1 }
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))

	entries := []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("a"), Data: []byte("zero")},
		{PartitionKey: aws.String("b"), Data: []byte("one")},
		{PartitionKey: aws.String("c"), Data: []byte("two")},
	}
	out, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: entries})
	require.NoError(t, err)
	require.EqualValues(t, 1, aws.ToInt32(out.FailedRecordCount))
	require.Equal(t, "ProvisionedThroughputExceededException", aws.ToString(out.Records[1].ErrorCode))
	require.Nil(t, out.Records[0].ErrorCode)

	// Retry the caller's own failed entries.
	f.failPut = nil
	var retry []types.PutRecordsRequestEntry
	for i, r := range out.Records {
		if r.ErrorCode != nil {
			retry = append(retry, entries[i])
		}
	}
	out, err = client.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: retry})
	require.NoError(t, err)
	require.EqualValues(t, 0, aws.ToInt32(out.FailedRecordCount))

	got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{
		ShardIterator: getIterator(t, client, "orders"),
	})
	require.NoError(t, err)
	require.Equal(t, []string{"a:zero", "c:two", "b:one"}, texts(got.Records))
}

// TestUserAgent checks the user-agent marker on the requests of a client
// with the option, over HTTP, and its absence without it.
func TestUserAgent(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	srv := httptest.NewServer(f)
	defer srv.Close()
	opts := fakeClientOptions(f)
	opts.HTTPClient = srv.Client()
	opts.BaseEndpoint = aws.String(srv.URL)

	client := kinesis.New(opts, ksse.WithEncryption(enc, dec))
	_, err := client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("v")})
	require.NoError(t, err)
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: getIterator(t, client, "s")})
	require.NoError(t, err)
	_, err = client.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	require.Error(t, err) // the fake does not know it; the header was sent
	// Given twice: one marker, and records encrypted once.
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("w")},
		ksse.WithEncryption(enc, dec))
	require.NoError(t, err)

	uas := f.userAgents()
	t.Logf("User-Agent: %s", uas[0])
	require.Len(t, uas, 5)
	for i, ua := range uas {
		require.Regexp(t, `(^| )ksse/\S+`, ua, "request %d (%s)", i, f.ops()[i])
		require.Equal(t, 1, strings.Count(ua, "ksse/"), "request %d: %q", i, ua)
	}
	wire := f.stored("s")
	e, rest, err := envelope.Parse(wire[1].Data)
	require.NoError(t, err)
	require.Empty(t, rest)
	d, err := dec.Decrypt(ctx, "s", wire[1].Data)
	require.NoError(t, err)
	require.Equal(t, "w", string(d.Data), "encrypted twice (%d-byte body)", len(e.Body))

	_, err = kinesis.New(opts).PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("v")})
	require.NoError(t, err)
	uas = f.userAgents()
	require.NotContains(t, uas[len(uas)-1], "ksse/")
}

// TestSubscribeToShardEvent decrypts the records of an enhanced fan-out
// event, by consumer ARN.
func TestSubscribeToShardEvent(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	var recs []types.Record
	for i, s := range []string{"a", "b", "c"} {
		e, err := enc.Encrypt(ctx, "orders", "pk-"+s, []byte(s))
		require.NoError(t, err)
		if i == 1 {
			e.Data[len(e.Data)-1] ^= 0x80 // the wrapped key: KMS refuses it
		}
		recs = append(recs, types.Record{Data: e.Data, PartitionKey: aws.String(e.PartitionKey), SequenceNumber: aws.String(strconv.Itoa(i))})
	}
	ev := &types.SubscribeToShardEvent{Records: recs, ContinuationSequenceNumber: aws.String("3"), MillisBehindLatest: aws.Int64(0)}
	consumerARN := "arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/app:1700000000"
	err := ksse.DecryptSubscribeToShardEvent(ctx, dec, consumerARN, ev)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{1}, be.Indexes())
	require.ErrorIs(t, err, envelope.ErrOpen)
	require.Equal(t, "pk-a:a", text(ev.Records[0]))
	require.Nil(t, ev.Records[1].Data)
	require.Equal(t, "pk-c:c", text(ev.Records[2]))
	require.Equal(t, "3", aws.ToString(ev.ContinuationSequenceNumber))

	// By stream name and ARN too; another stream does not authenticate.
	for _, stream := range []string{"orders", "arn:aws:kinesis:us-east-1:111122223333:stream/orders", "payments"} {
		e, err := enc.Encrypt(ctx, "orders", "k", []byte("v"))
		require.NoError(t, err)
		ev := &types.SubscribeToShardEvent{Records: []types.Record{{Data: e.Data}}}
		err = ksse.DecryptSubscribeToShardEvent(ctx, dec, stream, ev)
		if stream == "payments" {
			require.ErrorIs(t, err, envelope.ErrOpen)
			require.Nil(t, ev.Records[0].Data)
		} else {
			require.NoError(t, err, stream)
			require.Equal(t, "k:v", text(ev.Records[0]))
		}
	}
	require.ErrorContains(t, ksse.DecryptSubscribeToShardEvent(ctx, nil, "orders", ev), "nil Decryptor")
	require.ErrorIs(t, ksse.DecryptSubscribeToShardEvent(ctx, nil, "orders", ev), record.ErrInvalidInput)
	require.ErrorIs(t, ksse.DecryptSubscribeToShardEvent(ctx, dec, "orders", nil), record.ErrInvalidInput)
}

// TestConcurrent shares one client between producers and consumers.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))
	const writers, perWriter = 4, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("s%d", w)
			for i := range perWriter {
				_, err := client.PutRecords(ctx, &kinesis.PutRecordsInput{
					StreamName: aws.String(stream),
					Records:    []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte(strconv.Itoa(i))}},
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
			it := getIterator(t, client, stream)
			got, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
			if err != nil {
				t.Error(err)
				return
			}
			if len(got.Records) != perWriter || string(got.Records[perWriter-1].Data) != strconv.Itoa(perWriter-1) {
				t.Errorf("stream %s: %d records", stream, len(got.Records))
			}
		})
	}
	wg.Wait()
}

func getIterator(t testing.TB, client *kinesis.Client, stream string) *string {
	t.Helper()
	it, err := client.GetShardIterator(context.Background(), &kinesis.GetShardIteratorInput{
		StreamName: aws.String(stream), ShardId: aws.String(fakeShardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatalf("GetShardIterator: %v", err)
	}
	return it.ShardIterator
}

func text(r types.Record) string { return aws.ToString(r.PartitionKey) + ":" + string(r.Data) }

func texts(recs []types.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, text(r))
	}
	return s
}

func clonePutRecords(in *kinesis.PutRecordsInput) *kinesis.PutRecordsInput {
	c := *in
	c.Records = nil
	for _, r := range in.Records {
		r.Data = bytes.Clone(r.Data)
		if r.PartitionKey != nil {
			r.PartitionKey = aws.String(*r.PartitionKey)
		}
		if r.ExplicitHashKey != nil {
			r.ExplicitHashKey = aws.String(*r.ExplicitHashKey)
		}
		c.Records = append(c.Records, r)
	}
	return &c
}

// BenchmarkPutRecords measures a PutRecords call of 100 records of 1 KiB
// through the SDK to the in-process fake, with and without the option: the
// difference is the cost of encryption in the middleware.
func BenchmarkPutRecords(b *testing.B) {
	_, enc, dec := newKMSPair(b)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("orders")}
	for i := range 100 {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{PartitionKey: aws.String(strconv.Itoa(i)), Data: make([]byte, 1024)})
	}
	for _, bc := range []struct {
		name string
		opts []func(*kinesis.Options)
	}{{"plain", nil}, {"encrypted", []func(*kinesis.Options){ksse.WithEncryption(enc, dec)}}} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFakeKinesis()
			f.discard = true
			client := kinesis.New(fakeClientOptions(f), bc.opts...)
			b.SetBytes(100 * 1024)
			for b.Loop() {
				if _, err := client.PutRecords(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// forged returns an envelope made without KMS: the body sealed under a data
// key of the forger's choosing, with a made-up wrapped key.
func forged(t testing.TB, stream, pk, payload string) []byte {
	t.Helper()
	dk, wk := make([]byte, 32), make([]byte, 184)
	rand.Read(dk)
	rand.Read(wk)
	k, err := envelope.NewKey(dk, wk, []byte("kinesis:"+stream))
	require.NoError(t, err)
	defer k.Destroy()
	data, err := k.Seal(nil, []byte(pk), []byte(payload))
	require.NoError(t, err)
	return data
}

// TestTrustsAnyKey: GetRecords refuses a Decryptor that trusts any key,
// before sending, unless the client opts out too.
func TestTrustsAnyKey(t *testing.T) {
	ctx := context.Background()
	k, enc, _ := newKMSPair(t)
	anyKey, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.InsecureAllowAnyKey = true })
	require.NoError(t, err)
	defer anyKey.Close()
	require.True(t, anyKey.TrustsAnyKey())

	f := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, anyKey))
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("v")})
	require.NoError(t, err, "producing is not affected")
	it := getIterator(t, client, "orders")
	before := len(f.ops())
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "trusts any KMS key")
	require.Len(t, f.ops(), before, "GetRecords was sent")

	insecure := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, anyKey, func(o *ksse.Options) { o.InsecureAllowAnyKey = true }))
	out, err := insecure.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: getIterator(t, insecure, "orders")})
	require.NoError(t, err)
	require.Equal(t, []string{"k:v"}, texts(out.Records))
}

// TestKeyARNs: the KMS key of each record returned, index-aligned with the
// output's records, in every mode.
func TestKeyARNs(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	_, arnA := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, arnB := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	encA, err := record.NewEncryptor(k, arnA)
	require.NoError(t, err)
	defer encA.Close()
	encB, err := record.NewEncryptor(k, arnB)
	require.NoError(t, err)
	defer encB.Close()
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) {
		o.AllowedKeys, o.AllowPlaintext = []string{arnA, arnB}, true
	})
	require.NoError(t, err)
	defer dec.Close()
	strict, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arnA, arnB} })
	require.NoError(t, err)
	defer strict.Close()

	f := newFakeKinesis()
	plain := kinesis.New(fakeClientOptions(f))
	put := func(data []byte) {
		_, err := plain.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("ksse"), Data: data})
		require.NoError(t, err)
	}
	for _, e := range []*record.Encryptor{encA, encB, nil, encA} {
		if e == nil {
			put([]byte("plaintext"))
			continue
		}
		r, err := e.Encrypt(ctx, "orders", "k", []byte("v"))
		require.NoError(t, err)
		put(r.Data)
	}

	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(nil, dec))
	out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: getIterator(t, client, "orders")})
	require.NoError(t, err)
	require.Equal(t, []string{arnA, arnB, "", arnA}, ksse.KeyARNs(out.ResultMetadata))

	// A failed record ("plaintext", not allowed here) has "" in the
	// error's output ...
	client = kinesis.New(fakeClientOptions(f), ksse.WithEncryption(nil, strict))
	_, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: getIterator(t, client, "orders")})
	var gre *ksse.GetRecordsError
	require.ErrorAs(t, err, &gre)
	require.Equal(t, []string{arnA, arnB, "", arnA}, ksse.KeyARNs(gre.Output.ResultMetadata))

	// ... and is taken out, with its key, in skip mode.
	var rejected []ksse.Rejected
	client = kinesis.New(fakeClientOptions(f), ksse.WithEncryption(nil, strict, func(o *ksse.Options) {
		o.OnReject = func(_ context.Context, r ksse.Rejected) { rejected = append(rejected, r) }
	}))
	out, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: getIterator(t, client, "orders")})
	require.NoError(t, err)
	require.Len(t, out.Records, 3)
	require.Equal(t, []string{arnA, arnB, arnA}, ksse.KeyARNs(out.ResultMetadata))
	require.Len(t, rejected, 1)

	// Other calls have none.
	ps, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
		StreamName: aws.String("orders"), ShardId: aws.String(fakeShardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
	})
	require.NoError(t, err)
	require.Nil(t, ksse.KeyARNs(ps.ResultMetadata))
}

// TestSkipMode: with OnReject, GetRecords takes out the records that will
// never decrypt and reports them once; a transient failure fails the call
// with nothing of the output, and a retry with the same iterator reads it
// all.
func TestSkipMode(t *testing.T) {
	ctx := context.Background()
	k, enc, dec, keyARN := newKMS(t)
	f := newFakeKinesis()
	plain := kinesis.New(fakeClientOptions(f))
	var rejected []ksse.Rejected
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec, func(o *ksse.Options) {
		o.OnReject = func(_ context.Context, r ksse.Rejected) { rejected = append(rejected, r) }
	}))
	put := func(data []byte) {
		_, err := plain.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("ksse"), Data: data})
		require.NoError(t, err)
	}
	enc1 := func(v string) []byte {
		r, err := enc.Encrypt(ctx, "orders", "pk", []byte(v))
		require.NoError(t, err)
		return r.Data
	}
	tampered := enc1("secret")
	tampered[len(tampered)-3] ^= 1
	forgedData := forged(t, "orders", "pk", "forged")
	written := [][]byte{enc1("one"), tampered, []byte("plaintext"), enc1("two"), forgedData, enc1("three")}
	for _, d := range written {
		put(d)
	}

	out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: getIterator(t, client, "orders")})
	require.NoError(t, err)
	require.Equal(t, []string{"pk:one", "pk:two", "pk:three"}, texts(out.Records))
	require.Equal(t, []string{"1", "4", "6"}, seqs(out.Records))
	require.Len(t, rejected, 3)
	for i, want := range []struct {
		seq  string
		data []byte
		err  error
	}{{"2", tampered, envelope.ErrOpen}, {"3", []byte("plaintext"), record.ErrNotEncrypted}, {"5", forgedData, envelope.ErrOpen}} {
		r := rejected[i]
		require.Equal(t, want.seq, aws.ToString(r.Record.SequenceNumber))
		require.Equal(t, want.data, r.Record.Data, "the record as read")
		require.ErrorIs(t, r.Err, want.err)
		require.True(t, record.IsPermanent(r.Err))
		require.Equal(t, "orders", r.Stream)
	}

	// KMS throttles: the call fails, nothing rejected, and the same
	// iterator reads it all once KMS answers again.
	rejected = nil
	put(forged(t, "orders", "pk", "forged again"))
	put(enc1("four"))
	// A new data key for "five": the Encryptor's key cache does not
	// know it, so the Decryptor must call KMS.
	enc2, err := record.NewEncryptor(k, keyARN)
	require.NoError(t, err)
	defer enc2.Close()
	r5, err := enc2.Encrypt(ctx, "orders", "pk", []byte("five"))
	require.NoError(t, err)
	put(r5.Data)
	k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, -1)
	next := out.NextShardIterator
	out, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})
	require.Nil(t, out)
	var gre *ksse.GetRecordsError
	require.ErrorAs(t, err, &gre)
	require.Nil(t, gre.Output, "nothing of the output with a transient failure")
	require.Equal(t, []int{0, 2}, gre.Err.Indexes(), "only the transient failures")
	for _, fl := range gre.Err.Failed {
		require.False(t, record.IsPermanent(fl.Err))
	}
	require.Empty(t, rejected, "rejected before the call succeeded")

	k.ClearFaults()
	out, err = client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: next})
	require.NoError(t, err)
	require.Equal(t, []string{"pk:four", "pk:five"}, texts(out.Records))
	require.Len(t, rejected, 1)
	require.Equal(t, "7", aws.ToString(rejected[0].Record.SequenceNumber))
}

func seqs(recs []types.Record) []string {
	var s []string
	for _, r := range recs {
		s = append(s, aws.ToString(r.SequenceNumber))
	}
	return s
}

// TestSubscribeToShardRefused: the middleware cannot decrypt an event
// stream, so SubscribeToShard fails before anything is sent.
func TestSubscribeToShardRefused(t *testing.T) {
	_, enc, dec := newKMSPair(t)
	f := newFakeKinesis()
	client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, dec))
	_, err := client.SubscribeToShard(context.Background(), &kinesis.SubscribeToShardInput{
		ConsumerARN:      aws.String("arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/app:1700000000"),
		ShardId:          aws.String(fakeShardID),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest},
	})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "SubscribeToShard cannot be decrypted by WithEncryption")
	require.Contains(t, err.Error(), "DecryptSubscribeToShardEvent")
	require.Empty(t, f.ops())
}

// inFlightSpy is a KMS client that counts Decrypt calls and the most in
// flight at once. The first gate calls wait until gate calls are in
// flight together (or 10 s pass, which then shows in the count), so a
// fan-out of gate is observed without relying on timing.
type inFlightSpy struct {
	*kmsfake.KMS
	mu                   sync.Mutex
	calls, inFlight, max int
	gate                 int
	opened               bool
	open                 chan struct{}
}

func newInFlightSpy(k *kmsfake.KMS, gate int) *inFlightSpy {
	return &inFlightSpy{KMS: k, gate: gate, open: make(chan struct{})}
}

func (s *inFlightSpy) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	s.mu.Lock()
	s.calls++
	s.inFlight++
	s.max = max(s.max, s.inFlight)
	wait := s.calls <= s.gate
	if s.inFlight == s.gate && !s.opened {
		s.opened = true
		close(s.open)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if wait {
		select {
		case <-s.open:
		case <-time.After(10 * time.Second):
		}
	}
	return s.KMS.Decrypt(ctx, in, optFns...)
}

// coldBatch returns n records of stream "orders" written by producers
// Encryptors, each with its own data key, round robin.
func coldBatch(t testing.TB, k *kmsfake.KMS, keyARN string, n, producers int) []types.Record {
	t.Helper()
	var recs []types.Record
	encs := make([]*record.Encryptor, producers)
	for i := range encs {
		e, err := record.NewEncryptor(k, keyARN)
		require.NoError(t, err)
		defer e.Close()
		encs[i] = e
	}
	for i := range n {
		r, err := encs[i%producers].Encrypt(context.Background(), "orders", fmt.Sprint("pk-", i), []byte(fmt.Sprint("record ", i)))
		require.NoError(t, err)
		recs = append(recs, types.Record{Data: r.Data, PartitionKey: aws.String(r.PartitionKey), SequenceNumber: aws.String(strconv.Itoa(i + 1))})
	}
	return recs
}

// TestColdBatch: a cold batch of 500 records from 64 producers (64 data
// keys) makes one KMS Decrypt per data key, 16 at once, through GetRecords
// and DecryptSubscribeToShardEvent alike.
func TestColdBatch(t *testing.T) {
	const n, producers, latency = 500, 64, 20 * time.Millisecond
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	recs := coldBatch(t, k, arn, n, producers)
	k.SetLatency(latency)

	for _, via := range []string{"GetRecords", "DecryptSubscribeToShardEvent"} {
		t.Run(via, func(t *testing.T) {
			ctx := context.Background()
			spy := newInFlightSpy(k, 16)
			dec, err := record.NewDecryptor(spy, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
			require.NoError(t, err)
			defer dec.Close()

			var got []types.Record
			var took time.Duration
			switch via {
			case "GetRecords":
				f := newFakeKinesis()
				var entries []types.PutRecordsRequestEntry
				for _, r := range recs {
					entries = append(entries, types.PutRecordsRequestEntry{Data: r.Data, PartitionKey: r.PartitionKey})
				}
				_, err := kinesis.New(fakeClientOptions(f)).PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: entries})
				require.NoError(t, err)
				client := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(nil, dec))
				it := getIterator(t, client, "orders")
				start := time.Now()
				out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
				took = time.Since(start)
				require.NoError(t, err)
				got = out.Records
			default:
				ev := &types.SubscribeToShardEvent{Records: slices.Clone(recs)}
				start := time.Now()
				err := ksse.DecryptSubscribeToShardEvent(ctx, dec, "arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/app:1", ev)
				took = time.Since(start)
				require.NoError(t, err)
				got = ev.Records
			}
			require.Len(t, got, n)
			for i, r := range got {
				require.Equal(t, fmt.Sprint("record ", i), string(r.Data))
			}
			spy.mu.Lock()
			defer spy.mu.Unlock()
			require.Equal(t, producers, spy.calls, "one KMS Decrypt per data key")
			require.Equal(t, 16, spy.max, "KMS Decrypt calls in flight at most")
			t.Logf("cold batch via %s: %d records, %d data keys, %v KMS latency: %v (%d sequential round trips: %v)",
				via, n, producers, latency, took.Round(time.Millisecond), producers, producers*latency)
		})
	}
}

// BenchmarkColdBatch decrypts a cold SubscribeToShard event of 500 records
// from 64 producers with 20 ms KMS latency: 64 Decrypt calls, 16 at once,
// so about 4 round trips rather than 64.
func BenchmarkColdBatch(b *testing.B) {
	const n, producers = 500, 64
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	recs := coldBatch(b, k, arn, n, producers)
	k.SetLatency(20 * time.Millisecond)
	ctx := context.Background()
	before := k.Calls("Decrypt")
	for b.Loop() {
		dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
		if err != nil {
			b.Fatal(err)
		}
		ev := &types.SubscribeToShardEvent{Records: slices.Clone(recs)}
		if err := ksse.DecryptSubscribeToShardEvent(ctx, dec, "orders", ev); err != nil {
			b.Fatal(err)
		}
		dec.Close()
	}
	b.ReportMetric(float64(k.Calls("Decrypt")-before)/float64(b.N), "kms-decrypts/op")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}
