package record_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// These tests run the Encryptor and Decryptor over the real *kms.Client of
// aws-sdk-go-v2, talking HTTP to kmsfake.NewServer, with faults injected in
// the server: what the SDK makes of a throttle, a 5xx, a reset connection or
// a slow answer is what ksse sees. The client keeps the SDK's standard
// retryer (3 attempts) without backoff delays or a retry quota, so that
// the tests are fast and count every attempt.

// fltEnv is a KMS served over HTTP and a real client for it.
type fltEnv struct {
	k      *kmsfake.KMS
	client *kms.Client
	keyID  string
	arn    string
}

func newFltEnv(t *testing.T) *fltEnv {
	t.Helper()
	k := kmsfake.New()
	srv := kmsfake.NewServer(k)
	t.Cleanup(srv.Close)
	e := &fltEnv{k: k, client: srv.Client(func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			so.RateLimiter = ratelimit.None
		})
	})}
	e.keyID, e.arn = k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	return e
}

// fltKinesis is a Kinesis client that accepts every record and keeps every
// request it gets.
type fltKinesis struct {
	mu   sync.Mutex
	reqs []*kinesis.PutRecordsInput
}

func (f *fltKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, in)
	f.mu.Unlock()
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0)}
	for range in.Records {
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-000000000000")})
	}
	return out, nil
}

func (f *fltKinesis) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// fltBatch is a PutRecords input of n records whose payloads are easy to
// find in what was sent.
func fltBatch(n int) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String("orders")}
	for i := range n {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("customer-%d", i)),
			Data:         []byte(fmt.Sprintf("PLAINTEXT-PAYLOAD-%d", i)),
		})
	}
	return in
}

// noPlaintextSent requires that none of the requests f got holds a payload
// or a partition key of in.
func noPlaintextSent(t *testing.T, f *fltKinesis, in *kinesis.PutRecordsInput) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, req := range f.reqs {
		for _, r := range req.Records {
			require.Equal(t, record.OutboundPartitionKey, aws.ToString(r.PartitionKey))
			for _, p := range in.Records {
				require.False(t, bytes.Contains(r.Data, p.Data), "plaintext payload sent")
				require.False(t, bytes.Contains(r.Data, []byte(aws.ToString(p.PartitionKey))), "plaintext partition key sent")
			}
		}
	}
}

// fltClock is a clock that tests advance by hand.
type fltClock struct{ ns atomic.Int64 }

func newFltClock() *fltClock {
	c := &fltClock{}
	c.ns.Store(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fltClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fltClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fltWait polls cond for up to 10 s.
func fltWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fltFault is one KMS fault, as the tests inject it.
type fltFault struct {
	name string
	// inject starts the fault for the operation op, on the key keyID.
	inject func(e *fltEnv, op, keyID string)
	// clear ends it; nil if it cannot end (a deleted key).
	clear func(e *fltEnv, keyID string)
	// deadline, if set, is the caller's deadline for the call.
	deadline time.Duration
	// check checks the error of one record.
	check func(t *testing.T, err error)
	// class is the class shown in the table.
	class string
}

func isClass(class error) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, class)
		var ke *kmsiface.Error
		require.ErrorAs(t, err, &ke, "a KMS failure is a *kmsiface.Error")
	}
}

func httpStatus(code int) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ke *kmsiface.Error
		require.ErrorAs(t, err, &ke)
		require.Nil(t, kmsiface.ClassOf(err), "a 5xx is no KMS error class")
		var re *awshttp.ResponseError
		require.ErrorAs(t, err, &re)
		require.Equal(t, code, re.HTTPStatusCode())
	}
}

func fltFaults() []fltFault {
	inj := func(f kmsfake.Fault, n int) func(*fltEnv, string, string) {
		return func(e *fltEnv, op, _ string) { e.k.InjectFault(op, f, n) }
	}
	clearFaults := func(e *fltEnv, _ string) { e.k.ClearFaults() }
	setState := func(s kmstypes.KeyState) func(*fltEnv, string, string) {
		return func(e *fltEnv, _, id string) { e.k.SetKeyState(id, s) }
	}
	enable := func(e *fltEnv, id string) { e.k.SetKeyState(id, kmstypes.KeyStateEnabled) }
	return []fltFault{
		{name: "ThrottlingException on every call", inject: inj(kmsfake.Fault{Code: "ThrottlingException"}, -1), clear: clearFaults,
			check: isClass(kmsiface.ErrThrottling), class: "kmsiface.ErrThrottling"},
		{name: "HTTP 500 InternalFailure", inject: inj(kmsfake.Fault{Status: 500}, -1), clear: clearFaults,
			check: httpStatus(500), class: "none (*kmsiface.Error, HTTP 500)"},
		{name: "HTTP 503 ServiceUnavailable", inject: inj(kmsfake.Fault{Status: 503}, -1), clear: clearFaults,
			check: httpStatus(503), class: "none (*kmsiface.Error, HTTP 503)"},
		{name: "connection reset", inject: inj(kmsfake.Fault{Reset: true}, -1), clear: clearFaults,
			check: func(t *testing.T, err error) {
				var ke *kmsiface.Error
				require.ErrorAs(t, err, &ke)
				require.ErrorIs(t, err, syscall.ECONNRESET)
			}, class: "none (*kmsiface.Error, ECONNRESET)"},
		{name: "answer after 1 s, caller deadline 100 ms", inject: inj(kmsfake.Fault{Delay: time.Second}, 1), clear: clearFaults,
			deadline: 100 * time.Millisecond,
			check:    func(t *testing.T, err error) { require.ErrorIs(t, err, context.DeadlineExceeded) },
			class:    "context.DeadlineExceeded"},
		{name: "key disabled", inject: setState(kmstypes.KeyStateDisabled), clear: enable,
			check: isClass(kmsiface.ErrKeyDisabled), class: "kmsiface.ErrKeyDisabled"},
		{name: "key pending deletion", inject: setState(kmstypes.KeyStatePendingDeletion), clear: enable,
			check: isClass(kmsiface.ErrKeyDisabled), class: "kmsiface.ErrKeyDisabled"},
		{name: "access denied", inject: func(e *fltEnv, op, id string) { e.k.DenyAccess(id, op) },
			clear: func(e *fltEnv, id string) { e.k.AllowAccess(id) },
			check: isClass(kmsiface.ErrAccessDenied), class: "kmsiface.ErrAccessDenied"},
		{name: "key deleted (not found)", inject: func(e *fltEnv, _, id string) { e.k.DeleteKey(id) },
			check: isClass(kmsiface.ErrKeyNotFound), class: "kmsiface.ErrKeyNotFound"},
	}
}

// TestKMSFaultsProducer injects each fault into GenerateDataKey of a cold
// Encryptor and sends a batch of 5 records: every record must come back
// failed, the first with the typed error and the others with it or
// record.ErrNotSent, nothing may reach Kinesis, and once the fault is
// cleared the same Encryptor sends the batch.
func TestKMSFaultsProducer(t *testing.T) {
	const n = 5
	var table strings.Builder
	fmt.Fprintf(&table, "%-48s | %-34s | %-25s | %-9s | %-7s | %s\n", "fault (GenerateDataKey)", "error of each record", "failed", "KMS calls", "Kinesis", "after the fault clears")
	for _, f := range append(fltFaults(), fltFault{
		name: "ThrottlingException × 2 (SDK retries absorb it)", inject: func(e *fltEnv, op, _ string) {
			e.k.InjectFault(op, kmsfake.Fault{Code: "ThrottlingException"}, 2)
		}}) {
		t.Run(f.name, func(t *testing.T) {
			e := newFltEnv(t)
			// A key deleted for good is replaced through its alias.
			keyRef := e.arn
			if f.clear == nil {
				require.NoError(t, e.k.CreateAlias("alias/orders", e.keyID))
				keyRef = "alias/orders"
			}
			enc, err := record.NewEncryptor(e.client, keyRef)
			require.NoError(t, err)
			defer enc.Close()
			kin := &fltKinesis{}
			in := fltBatch(n)

			f.inject(e, "GenerateDataKey", e.keyID)
			ctx := context.Background()
			if f.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, f.deadline)
				defer cancel()
			}
			out, err := enc.PutRecords(ctx, kin, in)
			calls := e.k.Calls("GenerateDataKey")
			if f.check == nil { // absorbed
				require.NoError(t, err)
				require.Equal(t, 1, kin.calls())
				fmt.Fprintf(&table, "%-48s | %-34s | %-25s | %-9d | %-7d | %s\n", f.name, "none", "0/5", calls, kin.calls(), "-")
				return
			}
			require.Nil(t, out)
			var be *record.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, []int{0, 1, 2, 3, 4}, be.Indexes(), "every caller record is reported")
			// The first record carries the KMS error. The others carry it
			// too, or record.ErrNotSent when PutRecords stops asking KMS
			// after the first failure.
			f.check(t, be.Failed[0].Err)
			typed, notSent := 0, 0
			for _, re := range be.Failed {
				if errors.Is(re.Err, record.ErrNotSent) {
					notSent++
					continue
				}
				f.check(t, re.Err)
				typed++
			}
			require.Zero(t, kin.calls(), "nothing may be sent when encryption fails")
			require.Zero(t, enc.Stats().Entries)

			// Recovery, without a new Encryptor.
			recovery := "cannot clear; via a new key behind the alias: sent"
			if f.clear != nil {
				f.clear(e, e.keyID)
				recovery = "sent, same Encryptor"
			} else {
				id, _ := e.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
				require.NoError(t, e.k.CreateAlias("alias/orders", id))
			}
			_, err = enc.PutRecords(context.Background(), kin, in)
			require.NoError(t, err)
			require.Equal(t, 1, kin.calls())
			noPlaintextSent(t, kin, in)
			dec, err := record.NewDecryptor(e.client, anyKey)
			require.NoError(t, err)
			defer dec.Close()
			d, err := dec.Decrypt(context.Background(), "orders", kin.reqs[0].Records[3].Data)
			require.NoError(t, err)
			require.Equal(t, "PLAINTEXT-PAYLOAD-3", string(d.Data))
			fmt.Fprintf(&table, "%-48s | %-34s | %-25s | %-9d | %-7d | %s\n", f.name, f.class,
				fmt.Sprintf("%d/%d (%d typed, %d not sent)", len(be.Failed), n, typed, notSent), calls, 0, recovery)
		})
	}
	t.Logf("producer faults, batch of %d records, cold cache:\n%s", n, table.String())
}

// TestKMSFaultsConsumer decrypts a batch of 4 records, 2 sealed under key A
// and 2 under key B, after B's data key is cached, with each fault
// injected on Decrypt for key A (or for every Decrypt call: B is served
// from the cache): A's records must be reported per record with the typed
// error, B's must decrypt, and once the fault clears A's records decrypt
// with the same Decryptor.
func TestKMSFaultsConsumer(t *testing.T) {
	var table strings.Builder
	fmt.Fprintf(&table, "%-42s | %-34s | %-13s | %-9s | %s\n", "fault (Decrypt)", "error of each A record", "failed", "KMS calls", "after the fault clears")
	for _, f := range fltFaults() {
		t.Run(f.name, func(t *testing.T) {
			e := newFltEnv(t)
			idB, arnB := e.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
			_ = idB
			encA, err := record.NewEncryptor(e.client, e.arn)
			require.NoError(t, err)
			defer encA.Close()
			encB, err := record.NewEncryptor(e.client, arnB)
			require.NoError(t, err)
			defer encB.Close()
			ctx := context.Background()
			var data [4][]byte
			for i := range data {
				enc := encA
				if i%2 == 1 {
					enc = encB
				}
				r, err := enc.Encrypt(ctx, "orders", fmt.Sprintf("pk-%d", i), []byte(fmt.Sprintf("payload-%d", i)))
				require.NoError(t, err)
				data[i] = r.Data
			}
			batch := func() []types.Record {
				recs := make([]types.Record, len(data))
				for i, d := range data {
					recs[i] = types.Record{Data: bytes.Clone(d), PartitionKey: aws.String(record.OutboundPartitionKey)}
				}
				return recs
			}
			clock := newFltClock()
			dec, err := record.NewDecryptor(e.client, func(o *record.DecryptorOptions) {
				o.AllowedKeys = []string{e.arn, arnB}
				o.Now = clock.Now
			})
			require.NoError(t, err)
			defer dec.Close()
			_, err = dec.Decrypt(ctx, "orders", data[1]) // B's key cached
			require.NoError(t, err)

			f.inject(e, "Decrypt", e.keyID)
			before := e.k.Calls("Decrypt")
			cctx := ctx
			if f.deadline > 0 {
				var cancel context.CancelFunc
				cctx, cancel = context.WithTimeout(ctx, f.deadline)
				defer cancel()
			}
			recs := batch()
			err = dec.DecryptRecords(cctx, "orders", recs)
			calls := e.k.Calls("Decrypt") - before
			var be *record.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, []int{0, 2}, be.Indexes(), "only A's records fail")
			for _, re := range be.Failed {
				f.check(t, re.Err)
				require.Nil(t, recs[re.Index].Data, "a failed record carries no data")
			}
			for _, i := range []int{1, 3} {
				require.Equal(t, fmt.Sprintf("payload-%d", i), string(recs[i].Data))
				require.Equal(t, fmt.Sprintf("pk-%d", i), aws.ToString(recs[i].PartitionKey))
			}

			recovery := "cannot clear: A's records are lost, as with SSE"
			if f.clear != nil {
				f.clear(e, e.keyID)
				recovery = "all 4 decrypt, same Decryptor"
				if record.IsPermanent(be.Failed[0].Err) {
					// A refusal is remembered for NegativeTTL.
					recs = batch()
					require.Error(t, dec.DecryptRecords(ctx, "orders", recs))
					clock.Advance(defaultNegativeTTL)
					recovery = "all 4 decrypt after NegativeTTL, same Decryptor"
				}
				recs = batch()
				require.NoError(t, dec.DecryptRecords(ctx, "orders", recs))
				require.Equal(t, "payload-0", string(recs[0].Data))
			} else {
				recs = batch()
				require.ErrorIs(t, dec.DecryptRecords(ctx, "orders", recs), kmsiface.ErrKeyNotFound)
			}
			fmt.Fprintf(&table, "%-42s | %-34s | %-13s | %-9d | %s\n", f.name, f.class, "2/4 (A only)", calls, recovery)
		})
	}
	t.Logf("consumer faults, batch of 2 records of key A (faulty) and 2 of key B (cached):\n%s", table.String())
}

// TestRefreshAheadRidesOutOutage: with the default TTL (5 min) and
// refresh-ahead (15 s before expiry), a KMS outage that starts inside the
// refresh window and ends before the key expires fails no record; one that
// lasts past expiry fails every record closed, until it ends.
func TestRefreshAheadRidesOutOutage(t *testing.T) {
	ctx := context.Background()
	t.Run("shorter than the remaining TTL", func(t *testing.T) {
		e := newFltEnv(t)
		clock := newFltClock()
		enc, err := record.NewEncryptor(e.client, e.arn, func(o *record.EncryptorOptions) { o.Now = clock.Now })
		require.NoError(t, err)
		defer enc.Close()
		kin := &fltKinesis{}
		failed := 0
		put := func() {
			if _, err := enc.PutRecords(ctx, kin, fltBatch(10)); err != nil {
				var be *record.BatchError
				require.ErrorAs(t, err, &be)
				failed += len(be.Failed)
			}
		}
		put() // warm: key expires at t0 + 5 min, refresh from t0 + 4:45
		require.EqualValues(t, 1, e.k.Calls("GenerateDataKey"))

		clock.Advance(keycache.DefaultTTL - 12*time.Second) // inside the refresh window
		e.k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 503}, -1)
		for range 5 {
			put()
			clock.Advance(time.Second)
		}
		fltWait(t, "a failed background refresh", func() bool { return enc.Stats().Failures["Other"] > 0 })
		outageCalls := e.k.Calls("GenerateDataKey") - 1
		e.k.ClearFaults() // the outage ends 7 s before expiry

		clock.Advance(keycache.DefaultRefreshRetry) // the next refresh attempt is due
		put()
		fltWait(t, "a successful refresh", func() bool { return enc.Stats().Refreshes >= 2 })
		clock.Advance(30 * time.Second) // past the first key's expiry
		for range 5 {
			put()
		}
		require.Zero(t, failed, "no record may fail")
		require.EqualValues(t, 1, enc.Stats().Misses, "no record waited on KMS after the first: the key was replaced ahead of expiry")
		require.Equal(t, 12, kin.calls())
		t.Logf("outage from TTL-12s to TTL-7s: %d records sent, 0 failed; %d GenerateDataKey calls failed in the background during the outage",
			12*10, outageCalls)
	})

	t.Run("longer than the remaining TTL", func(t *testing.T) {
		e := newFltEnv(t)
		clock := newFltClock()
		enc, err := record.NewEncryptor(e.client, e.arn, func(o *record.EncryptorOptions) { o.Now = clock.Now })
		require.NoError(t, err)
		defer enc.Close()
		kin := &fltKinesis{}
		_, err = enc.PutRecords(ctx, kin, fltBatch(10))
		require.NoError(t, err)
		clock.Advance(keycache.DefaultTTL - 10*time.Second)
		e.k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, -1)
		_, err = enc.PutRecords(ctx, kin, fltBatch(10))
		require.NoError(t, err, "still inside the TTL")
		fltWait(t, "a failed background refresh", func() bool { return enc.Stats().Failures["Throttling"] > 0 })

		clock.Advance(11 * time.Second) // expired
		in := fltBatch(10)
		_, err = enc.PutRecords(ctx, kin, in)
		var be *record.BatchError
		require.ErrorAs(t, err, &be)
		require.Len(t, be.Failed, 10)
		require.ErrorIs(t, err, kmsiface.ErrThrottling)
		require.Equal(t, 2, kin.calls(), "an expired key is never used: the batch is not sent")

		e.k.ClearFaults()
		_, err = enc.PutRecords(ctx, kin, in)
		require.NoError(t, err)
		require.Equal(t, 3, kin.calls())
		noPlaintextSent(t, kin, in)
		t.Logf("outage past expiry: 10/10 records failed closed with kmsiface.ErrThrottling, 0 sent; sent after the outage")
	})
}

// TestCacheStorm starts 64 goroutines at once on a cold cache, then on an
// expired one, with 50 ms of KMS latency over HTTP: each storm must make
// exactly one KMS call, for the producer and for the consumer.
func TestCacheStorm(t *testing.T) {
	const g = 64
	e := newFltEnv(t)
	e.k.SetLatency(50 * time.Millisecond)
	clock := newFltClock()
	enc, err := record.NewEncryptor(e.client, e.arn, func(o *record.EncryptorOptions) {
		o.Now = clock.Now
		o.RefreshAhead = -1 // so that the producer's key expires
	})
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(e.client, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{e.arn}; o.Now = clock.Now })
	require.NoError(t, err)
	defer dec.Close()
	ctx := context.Background()

	storm := func(fn func(i int) error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, g)
		for i := range g {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if err := fn(i); err != nil {
					errs <- err
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	var data [g][]byte
	encrypt := func(i int) error {
		r, err := enc.Encrypt(ctx, "orders", fmt.Sprintf("pk-%d", i), []byte("payload"))
		data[i] = r.Data
		return err
	}
	decrypt := func(i int) error {
		d, err := dec.Decrypt(ctx, "orders", data[0])
		if err == nil && string(d.Data) != "payload" {
			err = errors.New("mismatch")
		}
		return err
	}

	storm(encrypt)
	coldP := e.k.Calls("GenerateDataKey")
	storm(decrypt)
	coldC := e.k.Calls("Decrypt")

	clock.Advance(keycache.DefaultTTL + time.Second)
	storm(encrypt)
	expiredP := e.k.Calls("GenerateDataKey") - coldP
	storm(decrypt) // data[0] is now under the second data key: a new wrapped key
	expiredC := e.k.Calls("Decrypt") - coldC
	clock.Advance(keycache.DefaultTTL + time.Second) // the consumer's entry expires too
	storm(decrypt)
	expiredSame := e.k.Calls("Decrypt") - coldC - expiredC

	require.EqualValues(t, 1, coldP, "producer, cold")
	require.EqualValues(t, 1, coldC, "consumer, cold")
	require.EqualValues(t, 1, expiredP, "producer, expired")
	require.EqualValues(t, 1, expiredC, "consumer, new wrapped key")
	require.EqualValues(t, 1, expiredSame, "consumer, expired entry")
	t.Logf("cache storms of %d goroutines, 50 ms KMS latency over HTTP: producer cold %d call, expired %d; consumer cold %d, new wrapped key %d, expired entry %d",
		g, coldP, expiredP, coldC, expiredC, expiredSame)
}

// defaultNegativeTTL is the documented default of
// DecryptorOptions.NegativeTTL.
const defaultNegativeTTL = time.Minute
