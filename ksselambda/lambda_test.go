package ksselambda_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/ksselambda"
	"github.com/ksse-go/ksse/record"
)

const streamARN = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"

type fixture struct {
	k   *kmsfake.KMS
	enc *record.Encryptor
	dec *record.Decryptor
	arn string
}

func newFixture(t testing.TB, optFns ...func(*record.DecryptorOptions)) *fixture {
	t.Helper()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	allow := func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} }
	dec, err := record.NewDecryptor(k, append([]func(*record.DecryptorOptions){allow}, optFns...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		enc.Close()
		dec.Close()
	})
	return &fixture{k, enc, dec, arn}
}

// rec returns the event record of an encrypted record, as Lambda delivers
// it: the outbound partition key, the envelope as data.
func (f *fixture) rec(t testing.TB, shard string, seq int, pk, data string) events.KinesisEventRecord {
	t.Helper()
	e, err := f.enc.Encrypt(context.Background(), streamARN, pk, []byte(data))
	require.NoError(t, err)
	return rawRec(shard, seq, e.PartitionKey, e.Data)
}

// rawRec returns an event record. Sequence numbers are unique in the
// stream, as Kinesis makes them: 4959NNNN in shard 0, 4960NNNN in shard 1.
func rawRec(shard string, seq int, pk string, data []byte) events.KinesisEventRecord {
	s := fmt.Sprintf("4959%04d", seq)
	if shard == shard1 {
		s = fmt.Sprintf("4960%04d", seq)
	}
	return events.KinesisEventRecord{
		AwsRegion:      "us-east-1",
		EventID:        shard + ":" + s,
		EventName:      "aws:kinesis:record",
		EventSource:    "aws:kinesis",
		EventSourceArn: streamARN,
		EventVersion:   "1.0",
		Kinesis: events.KinesisRecord{
			Data: data, PartitionKey: pk, SequenceNumber: s, KinesisSchemaVersion: "1.0",
		},
	}
}

const shard0, shard1 = "shardId-000000000000", "shardId-000000000001"

// recorder is a handler that keeps what it was given.
type recorder struct {
	calls [][]string // "pk:data (encryptionType)" per call
	resp  func(ev events.KinesisEvent) (events.KinesisEventResponse, error)
}

func (r *recorder) handle(_ context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	var got []string
	for _, x := range ev.Records {
		got = append(got, fmt.Sprintf("%s:%s (%s)", x.Kinesis.PartitionKey, x.Kinesis.Data, x.Kinesis.EncryptionType))
	}
	r.calls = append(r.calls, got)
	if r.resp != nil {
		return r.resp(ev)
	}
	return events.KinesisEventResponse{}, nil
}

func failures(seqs ...string) []events.KinesisBatchItemFailure {
	var f []events.KinesisBatchItemFailure
	for _, s := range seqs {
		f = append(f, events.KinesisBatchItemFailure{ItemIdentifier: s})
	}
	return f
}

// TestLambdaJSON checks that aws-lambda-go decodes the base64 of the event's
// data, so the handler decrypts the envelope's bytes.
func TestLambdaJSON(t *testing.T) {
	f := newFixture(t)
	e, err := f.enc.Encrypt(context.Background(), "orders", "customer-42", []byte("order 1"))
	require.NoError(t, err)
	payload := fmt.Sprintf(`{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":"ksse","sequenceNumber":"49590338271490256608559692538361571095921575989136588898","data":%q,"approximateArrivalTimestamp":1545084650.987},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000006:49590338271490256608559692538361571095921575989136588898","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::111122223333:role/lambda-role","awsRegion":"us-east-2","eventSourceARN":%q}]}`,
		base64.StdEncoding.EncodeToString(e.Data), streamARN)
	var ev events.KinesisEvent
	require.NoError(t, json.Unmarshal([]byte(payload), &ev))
	require.Equal(t, e.Data, ev.Records[0].Kinesis.Data)

	var r recorder
	resp, err := ksselambda.Handler(f.dec, r.handle)(context.Background(), ev)
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	require.Equal(t, [][]string{{"customer-42:order 1 (KMS)"}}, r.calls)
	out, err := json.Marshal(resp)
	require.NoError(t, err)
	require.JSONEq(t, `{"batchItemFailures":null}`, string(out))
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tampered := f.rec(t, shard0, 3, "c", "three")
	tampered.Kinesis.Data[envelope.HeaderSize+2] ^= 1
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{
		f.rec(t, shard0, 1, "a", "one"),
		f.rec(t, shard0, 2, "b", "two"),
		tampered,
		f.rec(t, shard0, 4, "d", "four"),
	}}
	orig := cloneEvent(ev)

	var r recorder
	var rej rejects
	resp, err := ksselambda.Handler(f.dec, r.handle, rej.option)(ctx, ev)
	require.NoError(t, err)
	require.Equal(t, [][]string{{"a:one (KMS)", "b:two (KMS)", "d:four (KMS)"}}, r.calls, "the shard goes on past a rejected record")
	require.Empty(t, resp.BatchItemFailures, "a rejected record is not delivered again")
	require.Equal(t, []string{"49590003"}, rej.seqs())
	require.ErrorIs(t, rej.errs[0], envelope.ErrOpen)
	require.Equal(t, orig.Records[2].Kinesis.Data, rej.recs[0].Kinesis.Data, "OnReject gets the record as delivered")
	require.Equal(t, orig, ev, "the caller's event was modified")

	// The handler's own failures are kept. It failed record 2, before the
	// rejected one: Lambda delivers record 3 again, so it is rejected then,
	// not now.
	r, rej = recorder{resp: func(ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{BatchItemFailures: failures(ev.Records[1].Kinesis.SequenceNumber)}, nil
	}}, rejects{}
	resp, err = ksselambda.Handler(f.dec, r.handle, rej.option)(ctx, ev)
	require.NoError(t, err)
	require.Equal(t, failures("49590002"), resp.BatchItemFailures)
	require.Empty(t, rej.seqs())

	// A handler failure after it: rejected now.
	r, rej = recorder{resp: func(ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{BatchItemFailures: failures(ev.Records[2].Kinesis.SequenceNumber)}, nil
	}}, rejects{}
	resp, err = ksselambda.Handler(f.dec, r.handle, rej.option)(ctx, ev)
	require.NoError(t, err)
	require.Equal(t, failures("49590004"), resp.BatchItemFailures)
	require.Equal(t, []string{"49590003"}, rej.seqs())

	// An identifier not in the event: Lambda retries it all; nothing rejected.
	r, rej = recorder{resp: func(ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{BatchItemFailures: failures("")}, nil
	}}, rejects{}
	_, err = ksselambda.Handler(f.dec, r.handle, rej.option)(ctx, ev)
	require.NoError(t, err)
	require.Empty(t, rej.seqs())

	// An error from the handler: the whole batch is retried, nothing
	// rejected.
	boom := errors.New("database down")
	r, rej = recorder{resp: func(events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, boom
	}}, rejects{}
	_, err = ksselambda.Handler(f.dec, r.handle, rej.option)(ctx, ev)
	require.Equal(t, boom, err)
	require.Empty(t, rej.seqs())

	// Only a rejected record: the handler is not called.
	r, rej = recorder{}, rejects{}
	resp, err = ksselambda.Handler(f.dec, r.handle, rej.option)(ctx, events.KinesisEvent{Records: ev.Records[2:3]})
	require.NoError(t, err)
	require.Empty(t, r.calls)
	require.Empty(t, resp.BatchItemFailures)
	require.Equal(t, []string{"49590003"}, rej.seqs())

	// An empty event.
	resp, err = ksselambda.Handler(f.dec, r.handle)(ctx, events.KinesisEvent{})
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	require.Empty(t, r.calls)
}

// rejects is an OnReject that keeps what it was given.
type rejects struct {
	recs []events.KinesisEventRecord
	errs []error
}

func (r *rejects) option(o *ksselambda.Options) {
	o.OnReject = func(_ context.Context, rec events.KinesisEventRecord, err error) {
		r.recs = append(r.recs, rec)
		r.errs = append(r.errs, err)
	}
}

func (r *rejects) seqs() []string {
	var s []string
	for _, x := range r.recs {
		s = append(s, x.Kinesis.SequenceNumber)
	}
	return s
}

// TestShards checks that a transient failure withholds the later records of
// its own shard only, and what DecryptEvent returns.
func TestShards(t *testing.T) {
	f := newFixture(t)
	_, arn2 := f.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	dec, err := record.NewDecryptor(f.k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{f.arn, arn2} })
	require.NoError(t, err)
	defer dec.Close()
	enc2, err := record.NewEncryptor(f.k, arn2)
	require.NoError(t, err)
	defer enc2.Close()
	g := &fixture{f.k, enc2, dec, arn2}

	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{
		f.rec(t, shard0, 1, "a", "a1"),
		f.rec(t, shard1, 1, "b", "b1"),
		rawRec(shard0, 2, "ksse", []byte("not encrypted")),
		g.rec(t, shard0, 3, "a", "a3"), // its key throttled
		f.rec(t, shard1, 2, "b", "b2"),
		f.rec(t, shard0, 4, "a", "a4"),
		rawRec(shard0, 5, "ksse", []byte("not encrypted")),
		rawRec(shard1, 3, "ksse", []byte("not encrypted")),
		f.rec(t, shard1, 4, "b", "b4"),
	}}
	_, err = dec.Decrypt(context.Background(), streamARN, ev.Records[0].Kinesis.Data) // key 1 cached
	require.NoError(t, err)
	f.k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)

	out, fails, err := ksselambda.DecryptEvent(context.Background(), dec, ev)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{2, 3, 7}, be.Indexes(), "rejected and transient failures; not the withheld records")
	require.ErrorIs(t, be.Failed[0].Err, record.ErrNotEncrypted)
	require.True(t, record.IsPermanent(be.Failed[0].Err))
	require.False(t, record.IsPermanent(be.Failed[1].Err), "%v", be.Failed[1].Err)
	require.True(t, record.IsPermanent(be.Failed[2].Err))
	require.Equal(t, failures("49590003"), fails)
	var got []string
	for _, r := range out.Records {
		got = append(got, r.EventID[len(r.EventID)-1:]+"/"+string(r.Kinesis.Data))
	}
	require.Equal(t, []string{"1/a1", "1/b1", "2/b2", "4/b4"}, got)
}

// eventSource simulates a Kinesis event source mapping with
// ReportBatchItemFailures. Each invocation delivers up to batch records of
// each shard from the shard's checkpoint. After the response, each shard's
// checkpoint moves to its lowest failed sequence number, or past what was
// delivered; after an error it stays.
type eventSource struct {
	t      *testing.T
	shards [][]events.KinesisEventRecord
	pos    []int
	batch  int
}

// invoke delivers the next event to h, if there is a record left, and
// returns what it delivered.
func (s *eventSource) invoke(ctx context.Context, h ksselambda.HandlerFunc) (events.KinesisEvent, bool) {
	s.t.Helper()
	if s.pos == nil {
		s.pos = make([]int, len(s.shards))
	}
	var ev events.KinesisEvent
	sent := make([]int, len(s.shards))
	for i, recs := range s.shards {
		sent[i] = min(s.batch, len(recs)-s.pos[i])
		ev.Records = append(ev.Records, recs[s.pos[i]:s.pos[i]+sent[i]]...)
	}
	if len(ev.Records) == 0 {
		return ev, false
	}
	resp, err := h(ctx, cloneEvent(ev))
	if err != nil {
		return ev, true
	}
	for i, recs := range s.shards {
		next := s.pos[i] + sent[i]
		for _, f := range resp.BatchItemFailures {
			j := slices.IndexFunc(recs[s.pos[i]:s.pos[i]+sent[i]], func(r events.KinesisEventRecord) bool {
				return r.Kinesis.SequenceNumber == f.ItemIdentifier
			})
			if j >= 0 {
				next = min(next, s.pos[i]+j)
			}
		}
		s.pos[i] = next
	}
	for _, f := range resp.BatchItemFailures {
		require.Contains(s.t, seqsOf(ev.Records), f.ItemIdentifier, "a failure names no delivered record")
	}
	return ev, true
}

func seqsOf(recs []events.KinesisEventRecord) []string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Kinesis.SequenceNumber)
	}
	return s
}

// forged returns an envelope made without KMS: the body sealed under a key
// of the forger's choosing, with a made-up wrapped key.
func forged(t testing.TB, stream string) []byte {
	t.Helper()
	dk, wk := make([]byte, 32), make([]byte, 180)
	rand.Read(dk)
	rand.Read(wk)
	k, err := envelope.NewKey(dk, wk, []byte("kinesis:"+stream))
	require.NoError(t, err)
	defer k.Destroy()
	data, err := k.Seal(nil, []byte("pk"), []byte("forged"))
	require.NoError(t, err)
	require.True(t, envelope.IsEnvelope(data))
	return data
}

// TestRedelivery runs a Handler under a simulated event source mapping: a
// forged, a plaintext, a tampered record and one under a key not allowed
// are each rejected once and their shard goes on in the same invocation; a
// throttled KMS call and an expired deadline withhold their shard from the
// record they hit, which is delivered again. In the end every good record
// is processed exactly once, in order.
func TestRedelivery(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, arnB := f.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, arnC := f.k.CreateKey(kmstypes.KeySpecSymmetricDefault) // not allowed
	dec, err := record.NewDecryptor(f.k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{f.arn, arnB} })
	require.NoError(t, err)
	defer dec.Close()
	encB, err := record.NewEncryptor(f.k, arnB)
	require.NoError(t, err)
	defer encB.Close()
	encC, err := record.NewEncryptor(f.k, arnC)
	require.NoError(t, err)
	defer encC.Close()
	a, b, c := f, &fixture{f.k, encB, dec, arnB}, &fixture{f.k, encC, dec, arnC}

	tampered := func(r events.KinesisEventRecord) events.KinesisEventRecord {
		r.Kinesis.Data[len(r.Kinesis.Data)-20] ^= 1
		return r
	}
	s0 := []events.KinesisEventRecord{
		a.rec(t, shard0, 1, "k", "a1"),
		rawRec(shard0, 2, "ksse", forged(t, "orders")),
		a.rec(t, shard0, 3, "k", "a3"),
		rawRec(shard0, 4, "k", []byte("plaintext")),
		c.rec(t, shard0, 5, "k", "c5"),
		// Second invocation: B's key throttled.
		tampered(a.rec(t, shard0, 6, "k", "a6")),
		a.rec(t, shard0, 7, "k", "a7"),
		b.rec(t, shard0, 8, "k", "b8"),
		a.rec(t, shard0, 9, "k", "a9"),
		a.rec(t, shard0, 10, "k", "a10"),
		// Third: the deadline has passed; fourth: all goes through.
		rawRec(shard0, 11, "ksse", forged(t, "orders")),
		a.rec(t, shard0, 12, "k", "a12"),
	}
	s1 := []events.KinesisEventRecord{
		a.rec(t, shard1, 1, "k", "x1"),
		tampered(a.rec(t, shard1, 2, "k", "x2")),
		a.rec(t, shard1, 3, "k", "x3"),
		a.rec(t, shard1, 4, "k", "x4"),
		rawRec(shard1, 5, "k", []byte("plaintext")),
		a.rec(t, shard1, 6, "k", "x6"),
		a.rec(t, shard1, 7, "k", "x7"),
		a.rec(t, shard1, 8, "k", "x8"),
		a.rec(t, shard1, 9, "k", "x9"),
		a.rec(t, shard1, 10, "k", "x10"),
		a.rec(t, shard1, 11, "k", "x11"),
		a.rec(t, shard1, 12, "k", "x12"),
		a.rec(t, shard1, 13, "k", "x13"),
		a.rec(t, shard1, 14, "k", "x14"),
		a.rec(t, shard1, 15, "k", "x15"),
		a.rec(t, shard1, 16, "k", "x16"),
	}
	src := &eventSource{t: t, shards: [][]events.KinesisEventRecord{s0, s1}, batch: 5}

	processed := map[string][]string{} // shard → data
	var calls [][]string
	var rej rejects
	h := ksselambda.Handler(dec, func(_ context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		var call []string
		for _, r := range ev.Records {
			sh, _, _ := strings.Cut(r.EventID, ":")
			processed[sh] = append(processed[sh], string(r.Kinesis.Data))
			call = append(call, string(r.Kinesis.Data))
		}
		calls = append(calls, call)
		return events.KinesisEventResponse{}, nil
	}, rej.option)

	// 1: rejects forged, plaintext and key C in shard 0, tampered and
	// plaintext in shard 1.
	_, ok := src.invoke(ctx, h)
	require.True(t, ok)
	require.Equal(t, []string{"a1", "a3", "x1", "x3", "x4"}, calls[0])
	require.Equal(t, []string{"49590002", "49590004", "49590005", "49600002", "49600005"}, rej.seqs())
	require.ErrorIs(t, rej.errs[0], envelope.ErrOpen)
	require.ErrorIs(t, rej.errs[1], record.ErrNotEncrypted)
	require.ErrorIs(t, rej.errs[2], keycache.ErrNotAllowed)
	require.ErrorIs(t, rej.errs[3], envelope.ErrOpen)
	require.ErrorIs(t, rej.errs[4], record.ErrNotEncrypted)
	require.Equal(t, []int{5, 5}, src.pos)

	// 2: B's key throttled: record 8 and after withheld, tampered 6
	// rejected; shard 1 goes on.
	f.k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, ok = src.invoke(ctx, h)
	require.True(t, ok)
	require.Equal(t, []string{"a7", "x6", "x7", "x8", "x9", "x10"}, calls[1])
	require.Equal(t, []string{"49590006"}, rej.seqs()[5:])
	require.Equal(t, []int{7, 10}, src.pos, "shard 0 starts again at record 8")

	// 3: the deadline has passed before B's key could be unwrapped.
	expired, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	_, ok = src.invoke(expired, h)
	require.True(t, ok)
	require.Equal(t, []string{"x11", "x12", "x13", "x14", "x15"}, calls[2])
	require.Equal(t, []int{7, 15}, src.pos)

	// 4 and on: everything goes through.
	for n := 0; ; n++ {
		require.Less(t, n, 5, "no progress")
		if _, ok := src.invoke(ctx, h); !ok {
			break
		}
	}
	require.Equal(t, []string{"a1", "a3", "a7", "b8", "a9", "a10", "a12"}, processed[shard0])
	var want1 []string
	for i := 1; i <= 16; i++ {
		if i != 2 && i != 5 {
			want1 = append(want1, fmt.Sprint("x", i))
		}
	}
	require.Equal(t, want1, processed[shard1])
	require.Equal(t, []string{"49590002", "49590004", "49590005", "49600002", "49600005", "49590006", "49590011"}, rej.seqs(), "each bad record rejected exactly once")
	for _, err := range rej.errs {
		require.True(t, record.IsPermanent(err), "rejected for a transient failure: %v", err)
	}
	require.Equal(t, []int{len(s0), len(s1)}, src.pos)
}

// TestEventSource checks the stream each record is decrypted for.
func TestEventSource(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.rec(t, shard0, 1, "k", "v")

	consumer := r
	consumer.EventSourceArn = streamARN + "/consumer/app:1700000000"
	other := r
	other.EventSourceArn = "arn:aws:kinesis:us-east-1:111122223333:stream/payments"
	missing := r
	missing.EventSourceArn = ""
	for name, c := range map[string]struct {
		rec events.KinesisEventRecord
		err error
	}{
		"stream ARN":   {r, nil},
		"consumer ARN": {consumer, nil},
		"other stream": {other, envelope.ErrOpen},
		"no ARN":       {missing, record.ErrInvalidInput},
	} {
		out, fails, err := ksselambda.DecryptEvent(ctx, f.dec, events.KinesisEvent{Records: []events.KinesisEventRecord{c.rec}})
		if c.err == nil {
			require.NoError(t, err, name)
			require.Equal(t, "v", string(out.Records[0].Kinesis.Data), name)
			continue
		}
		require.ErrorIs(t, err, c.err, name)
		require.Empty(t, out.Records, name)
		if record.IsPermanent(c.err) {
			require.Empty(t, fails, name) // rejected
		} else {
			require.Equal(t, failures(r.Kinesis.SequenceNumber), fails, name) // withheld
		}
	}
	// No Decryptor: every shard withheld.
	_, fails, err := ksselambda.DecryptEvent(ctx, nil, events.KinesisEvent{Records: []events.KinesisEventRecord{r, f.rec(t, shard0, 2, "k", "v"), f.rec(t, shard1, 1, "k", "v")}})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.Equal(t, failures("49590001", "49600001"), fails)
}

// TestAllowPlaintext: a Decryptor that allows plaintext passes such records
// on, marked NONE.
func TestAllowPlaintext(t *testing.T) {
	f := newFixture(t, func(o *record.DecryptorOptions) { o.AllowPlaintext = true })
	var r recorder
	resp, err := ksselambda.Handler(f.dec, r.handle)(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{
		rawRec(shard0, 1, "old", []byte("written before encryption")),
		f.rec(t, shard0, 2, "new", "encrypted"),
	}})
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	require.Equal(t, [][]string{{"old:written before encryption (NONE)", "new:encrypted (KMS)"}}, r.calls)
}

// TestLogging checks that the default OnReject logs a rejected record at
// level Error with its event ID, stream, sequence number and reason, and
// without its content; and that a transient failure is logged at Warn.
func TestLogging(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))

	bad := rawRec(shard0, 1, "ksse", []byte("top secret plaintext"))
	resp, err := ksselambda.Handler(f.dec, (&recorder{}).handle)(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{bad}})
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	log := buf.String()
	require.Equal(t, 1, strings.Count(log, "\n"), log)
	require.Contains(t, log, "level=ERROR")
	require.Contains(t, log, "eventID="+bad.EventID)
	require.Contains(t, log, "eventSourceARN="+streamARN)
	require.Contains(t, log, "sequenceNumber="+bad.Kinesis.SequenceNumber)
	require.Contains(t, log, record.ErrNotEncrypted.Error())
	require.NotContains(t, log, "secret")

	buf.Reset()
	f.k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	good := f.rec(t, shard0, 2, "secret-pk", "secret payload")
	resp, err = ksselambda.Handler(f.dec, (&recorder{}).handle)(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{good}})
	require.NoError(t, err)
	require.Equal(t, failures(good.Kinesis.SequenceNumber), resp.BatchItemFailures)
	log = buf.String()
	require.Contains(t, log, "level=WARN")
	require.Contains(t, log, "ThrottlingException")
	require.NotContains(t, log, "level=ERROR")
	require.NotContains(t, log, "secret")
}

func cloneEvent(ev events.KinesisEvent) events.KinesisEvent {
	var c events.KinesisEvent
	for _, r := range ev.Records {
		r.Kinesis.Data = bytes.Clone(r.Kinesis.Data)
		c.Records = append(c.Records, r)
	}
	return c
}
