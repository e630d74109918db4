package ksse_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse"
	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/motoserver/mototest"
	"github.com/ksse-go/ksse/kmstest"
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
func newKMSPair(t testing.TB) (*kmstest.KMS, *record.Encryptor, *record.Decryptor) {
	t.Helper()
	k := kmstest.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	t.Cleanup(func() {
		enc.Close()
		dec.Close()
	})
	return k, enc, dec
}

func TestMain(m *testing.M) { mototest.Main(m) }

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
	require.ErrorIs(t, err, record.ErrInvalidStream)
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
	k.SetFaultFunc(func(op string) *kmstest.Fault {
		if op == "GenerateDataKey" {
			return &kmstest.Fault{Code: "KMSInternalException"}
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
	require.ErrorIs(t, err, record.ErrInvalidPartitionKey)
	require.ErrorIs(t, err, record.ErrNotSent)

	// Too large once encrypted.
	_, err = client.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: make([]byte, record.DefaultMaxRecordSize)})
	require.ErrorIs(t, err, record.ErrRecordTooLarge)

	// A client without an Encryptor does not send plaintext.
	consumer := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(nil, dec))
	_, err = consumer.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("x")})
	require.ErrorIs(t, err, ksse.ErrNoEncryptor)
	_, err = consumer.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	require.ErrorIs(t, err, ksse.ErrNoEncryptor)

	require.Empty(t, f.ops(), "a request was sent")

	// A client without a Decryptor does not return ciphertext as records.
	producer := kinesis.New(fakeClientOptions(f), ksse.WithEncryption(enc, nil))
	_, err = producer.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("x"), StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/orders")})
	require.ErrorIs(t, err, ksse.ErrNoDecryptor)
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
	require.ErrorIs(t, ksse.DecryptSubscribeToShardEvent(ctx, nil, "orders", ev), ksse.ErrNoDecryptor)
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
