package ksselambda_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/ksselambda"
	"github.com/ksse-go/ksse/record"
)

const streamARN = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"

type fixture struct {
	k   *kmstest.KMS
	enc *record.Encryptor
	dec *record.Decryptor
}

func newFixture(t testing.TB, optFns ...func(*record.DecryptorOptions)) *fixture {
	t.Helper()
	k := kmstest.New()
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
	return &fixture{k, enc, dec}
}

// rec returns the event record of an encrypted record, as Lambda delivers
// it: the outbound partition key, the envelope as data.
func (f *fixture) rec(t testing.TB, shard string, seq int, pk, data string) events.KinesisEventRecord {
	t.Helper()
	e, err := f.enc.Encrypt(context.Background(), streamARN, pk, []byte(data))
	require.NoError(t, err)
	return rawRec(shard, seq, e.PartitionKey, e.Data)
}

func rawRec(shard string, seq int, pk string, data []byte) events.KinesisEventRecord {
	s := fmt.Sprintf("4959%04d", seq)
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
	resp, err := ksselambda.Handler(f.dec, r.handle)(ctx, ev)
	require.NoError(t, err)
	require.Equal(t, [][]string{{"a:one (KMS)", "b:two (KMS)"}}, r.calls, "records after the failed one must be withheld")
	require.Equal(t, failures("49590003"), resp.BatchItemFailures)
	require.Equal(t, orig, ev, "the caller's event was modified")

	// The handler's own failures are kept, ours added.
	r = recorder{resp: func(ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{BatchItemFailures: failures(ev.Records[1].Kinesis.SequenceNumber)}, nil
	}}
	resp, err = ksselambda.Handler(f.dec, r.handle)(ctx, ev)
	require.NoError(t, err)
	require.Equal(t, failures("49590002", "49590003"), resp.BatchItemFailures)

	// An error from the handler: the whole batch is retried.
	boom := errors.New("database down")
	r = recorder{resp: func(events.KinesisEvent) (events.KinesisEventResponse, error) {
		return events.KinesisEventResponse{}, boom
	}}
	_, err = ksselambda.Handler(f.dec, r.handle)(ctx, ev)
	require.Equal(t, boom, err)

	// The first record fails: nothing to process, the handler is not called.
	r = recorder{}
	resp, err = ksselambda.Handler(f.dec, r.handle)(ctx, events.KinesisEvent{Records: ev.Records[2:]})
	require.NoError(t, err)
	require.Empty(t, r.calls)
	require.Equal(t, failures("49590003"), resp.BatchItemFailures)

	// An empty event.
	resp, err = ksselambda.Handler(f.dec, r.handle)(ctx, events.KinesisEvent{})
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	require.Empty(t, r.calls)
}

// TestShards checks that a failure withholds the later records of its own
// shard only.
func TestShards(t *testing.T) {
	f := newFixture(t)
	ev := events.KinesisEvent{Records: []events.KinesisEventRecord{
		f.rec(t, shard0, 1, "a", "a1"),
		f.rec(t, shard1, 1, "b", "b1"),
		rawRec(shard0, 2, "ksse", []byte("not encrypted")),
		f.rec(t, shard1, 2, "b", "b2"),
		f.rec(t, shard0, 3, "a", "a3"),
	}}
	out, fails, err := ksselambda.DecryptEvent(context.Background(), f.dec, ev)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{2}, be.Indexes())
	require.ErrorIs(t, err, record.ErrNotEncrypted)
	require.Equal(t, failures("49590002"), fails)
	var got []string
	for _, r := range out.Records {
		got = append(got, r.EventID[len(r.EventID)-1:]+"/"+string(r.Kinesis.Data))
	}
	require.Equal(t, []string{"1/a1", "1/b1", "2/b2"}, got)
}

// TestRedelivery simulates Lambda: after a partial batch response it
// delivers again every record of the shard from the lowest failed sequence
// number. A transient KMS failure in the middle of a batch must end with
// every record processed once, in order.
func TestRedelivery(t *testing.T) {
	f := newFixture(t)
	// Records 3 and 4 under a second key, whose unwrapping fails once.
	_, arn2 := f.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc2, err := record.NewEncryptor(f.k, arn2)
	require.NoError(t, err)
	defer enc2.Close()
	all := []events.KinesisEventRecord{f.rec(t, shard0, 1, "k", "1"), f.rec(t, shard0, 2, "k", "2")}
	g := &fixture{f.k, enc2, f.dec}
	all = append(all, g.rec(t, shard0, 3, "k", "3"), g.rec(t, shard0, 4, "k", "4"))

	var decrypts atomic.Int32
	f.k.SetFaultFunc(func(op string) *kmstest.Fault {
		if op == "Decrypt" && decrypts.Add(1) == 2 {
			return &kmstest.Fault{Code: "ThrottlingException"}
		}
		return nil
	})

	var processed []string
	handler := ksselambda.Handler(f.dec, func(_ context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		for _, r := range ev.Records {
			processed = append(processed, string(r.Kinesis.Data))
		}
		return events.KinesisEventResponse{}, nil
	})
	batch := all
	for invocations := 1; len(batch) > 0; invocations++ {
		require.LessOrEqual(t, invocations, 3, "no progress")
		resp, err := handler(context.Background(), events.KinesisEvent{Records: batch})
		require.NoError(t, err)
		if len(resp.BatchItemFailures) == 0 {
			break
		}
		checkpoint := resp.BatchItemFailures[0].ItemIdentifier
		for _, fl := range resp.BatchItemFailures {
			checkpoint = min(checkpoint, fl.ItemIdentifier) // same length: string order is numeric order
		}
		for i, r := range batch {
			if r.Kinesis.SequenceNumber == checkpoint {
				batch = batch[i:]
				break
			}
		}
	}
	require.Equal(t, []string{"1", "2", "3", "4"}, processed)
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
		"no ARN":       {missing, record.ErrInvalidStream},
	} {
		out, fails, err := ksselambda.DecryptEvent(ctx, f.dec, events.KinesisEvent{Records: []events.KinesisEventRecord{c.rec}})
		if c.err == nil {
			require.NoError(t, err, name)
			require.Equal(t, "v", string(out.Records[0].Kinesis.Data), name)
			continue
		}
		require.ErrorIs(t, err, c.err, name)
		require.Empty(t, out.Records, name)
		require.Equal(t, failures(r.Kinesis.SequenceNumber), fails, name)
	}
	_, fails, err := ksselambda.DecryptEvent(ctx, nil, events.KinesisEvent{Records: []events.KinesisEventRecord{r}})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.Len(t, fails, 1)
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

// TestLogging checks that failures are logged with their event ID and
// reason, and without the record's content.
func TestLogging(t *testing.T) {
	f := newFixture(t)
	var buf bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))

	bad := rawRec(shard0, 1, "ksse", []byte("top secret plaintext"))
	_, err := ksselambda.Handler(f.dec, (&recorder{}).handle)(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{bad}})
	require.NoError(t, err)
	log := buf.String()
	require.Contains(t, log, "level=ERROR")
	require.Contains(t, log, bad.EventID)
	require.Contains(t, log, record.ErrNotEncrypted.Error())
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
