package record_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// TestDecryptorStrictByDefault: a Decryptor is not built without the keys
// it trusts, or with entries that KMS would never report (key IDs,
// aliases); InsecureAllowAnyKey is the named way out.
func TestDecryptorStrictByDefault(t *testing.T) {
	k := kmsfake.New()
	keyID, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, err := record.NewDecryptor(k)
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "AllowedKeys")
	require.ErrorContains(t, err, "InsecureAllowAnyKey")
	for _, bad := range []string{keyID, "alias/orders", "arn:aws:kms:us-east-1:111122223333:alias/orders", ""} {
		_, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn, bad} })
		require.ErrorIs(t, err, record.ErrInvalidInput, bad)
		require.ErrorContains(t, err, fmt.Sprintf("%q is not a key ARN", bad))
	}
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	require.False(t, dec.TrustsAnyKey())
	dec.Close()
	dec, err = record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.InsecureAllowAnyKey = true })
	require.NoError(t, err)
	require.True(t, dec.TrustsAnyKey())
	dec.Close()
	_, err = record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn}; o.MaxNewKeysPerBatch = -1 })
	require.ErrorIs(t, err, record.ErrInvalidInput)
	// A cache option out of range is an error too, not a clamp.
	_, err = record.NewDecryptor(k, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{arn}
		o.TTL = 10 * time.Second
		o.NegativeTTL = time.Minute
	})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "NegativeTTL 1m0s is longer than TTL 10s")
}

// TestNewEncryptorOptions: a cache option out of range fails NewEncryptor
// with ErrInvalidInput, and a client without DescribeKey fails SetKeyID.
func TestNewEncryptorOptions(t *testing.T) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	for name, fn := range map[string]func(*record.EncryptorOptions){
		"RefreshAhead = TTL":    func(o *record.EncryptorOptions) { o.TTL = time.Minute; o.RefreshAhead = time.Minute },
		"negative TTL":          func(o *record.EncryptorOptions) { o.TTL = -time.Second },
		"negative RefreshRetry": func(o *record.EncryptorOptions) { o.RefreshRetry = -time.Second },
		"negative CallTimeout":  func(o *record.EncryptorOptions) { o.CallTimeout = -time.Second },
	} {
		_, err := record.NewEncryptor(k, arn, fn)
		require.ErrorIs(t, err, record.ErrInvalidInput, name)
	}
	enc, err := record.NewEncryptor(generateOnly{k}, arn)
	require.NoError(t, err)
	defer enc.Close()
	_, err = enc.Encrypt(context.Background(), "s", "pk", []byte("x"))
	require.NoError(t, err, "GenerateDataKey is enough to encrypt")
	require.ErrorIs(t, enc.SetKeyID(context.Background(), arn), record.ErrInvalidInput)
	require.Equal(t, arn, enc.KeyID())
}

// generateOnly is a KMS client with GenerateDataKey only.
type generateOnly struct{ kmsiface.DataKeyGenerator }

func TestIsKeyARN(t *testing.T) {
	for s, want := range map[string]bool{
		"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab":     true,
		"arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab":     true,
		"arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab": true,
		"arn:aws:kms:us-east-1:111122223333:alias/orders":                                 false,
		"1234abcd-12ab-34cd-56ef-1234567890ab":                                            false,
		"alias/orders":                                                                    false,
		"arn:aws:kms:us-east-1:111122223333:key/":                                         false,
		"arn:aws:kms::111122223333:key/x":                                                 false,
		"arn:aws:kinesis:us-east-1:111122223333:key/x":                                    false,
		"arn:aws:kms:us-east-1:111122223333:key/x/y":                                      false,
		"": false,
	} {
		require.Equal(t, want, record.IsKeyARN(s), s)
	}
}

// countingKMS counts the Decrypt calls in flight, and the most at once.
type countingKMS struct {
	*kmsfake.KMS
	inFlight, maxInFlight atomic.Int64
}

func (c *countingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return c.KMS.Decrypt(ctx, in, optFns...)
}

// producers makes records records for stream from p producers, each with a
// data key of its own (key ARN arn), round robin: the records of a GetRecords
// batch of a busy stream.
func producers(t testing.TB, k *kmsfake.KMS, arn, stream string, p, records int) [][]byte {
	t.Helper()
	encs := make([]*record.Encryptor, p)
	for i := range encs {
		var err error
		encs[i], err = record.NewEncryptor(k, arn)
		require.NoError(t, err)
		defer encs[i].Close()
	}
	out := make([][]byte, records)
	for i := range out {
		r, err := encs[i%p].Encrypt(context.Background(), stream, fmt.Sprintf("pk-%d", i), fmt.Appendf(nil, "payload-%d", i))
		require.NoError(t, err)
		out[i] = r.Data
	}
	return out
}

// TestDecryptBatchCold: a cold batch of 500 records from 64 producers makes
// one Decrypt call per data key, 16 at once, and returns every record in
// order with its key ARN.
func TestDecryptBatchCold(t *testing.T) {
	k := &countingKMS{KMS: kmsfake.New()}
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	data := producers(t, k.KMS, arn, "orders", 64, 500)
	k.SetLatency(20 * time.Millisecond)
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	defer dec.Close()
	start := time.Now()
	out, err := dec.DecryptBatch(context.Background(), "orders", data)
	elapsed := time.Since(start)
	require.NoError(t, err)
	for i, d := range out {
		require.Equal(t, fmt.Sprintf("pk-%d", i), d.PartitionKey)
		require.Equal(t, fmt.Sprintf("payload-%d", i), string(d.Data))
		require.Equal(t, arn, d.KeyARN)
		require.True(t, d.Encrypted)
	}
	require.Equal(t, int64(64), k.Calls("Decrypt"))
	// At most 16 at once; at least several, or the batch is not concurrent
	// (fewer than 16 only if a call ends before the last worker starts).
	require.LessOrEqual(t, k.maxInFlight.Load(), int64(16))
	require.GreaterOrEqual(t, k.maxInFlight.Load(), int64(4))
	t.Logf("cold batch, 500 records, 64 data keys, 20 ms KMS: 64 Decrypt calls, at most 16 at once, %v (%.1f round trips)",
		elapsed.Round(time.Millisecond), elapsed.Seconds()/0.020)
}

// TestDecryptBatchNewKeyBound: one batch unwraps at most MaxNewKeysPerBatch
// new wrapped keys; records under the others fail at once, transiently, and
// decrypt in the next batch.
func TestDecryptBatchNewKeyBound(t *testing.T) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	data := producers(t, k, arn, "orders", 20, 40)
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{arn}
		o.MaxNewKeysPerBatch = 8
	})
	require.NoError(t, err)
	defer dec.Close()
	ctx := context.Background()
	for round, wantFailed := range []int{24, 8, 0} {
		before := k.Calls("Decrypt")
		out, err := dec.DecryptBatch(ctx, "orders", data)
		require.Equal(t, int64(min(8, 20-8*round)), k.Calls("Decrypt")-before)
		if wantFailed == 0 {
			require.NoError(t, err)
			break
		}
		var be *record.BatchError
		require.ErrorAs(t, err, &be)
		require.Len(t, be.Failed, wantFailed, "round %d", round)
		for _, f := range be.Failed {
			require.ErrorIs(t, f.Err, keycache.ErrRateLimited)
			require.False(t, record.IsPermanent(f.Err))
			require.Zero(t, out[f.Index])
			// Producers are round robin: the keys first seen are unwrapped.
			require.GreaterOrEqual(t, f.Index%20, 8*(round+1))
		}
	}
}

// TestIsPermanent classifies the failures of records.
func TestIsPermanent(t *testing.T) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, other := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	good := producers(t, k, arn, "orders", 1, 1)[0]
	foreign := producers(t, k, other, "orders", 1, 1)[0]
	e, _, err := envelope.Parse(good)
	require.NoError(t, err)
	forged := envelope.Envelope{Salt: e.Salt, Body: e.Body, WrappedKey: []byte("not a KMS ciphertext")}
	forgedData, err := forged.MarshalBinary()
	require.NoError(t, err)
	tampered := append([]byte(nil), good...)
	tampered[40] ^= 1

	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	defer dec.Close()
	ctx := context.Background()
	for name, data := range map[string][]byte{
		"tampered": tampered, "forged wrapped key": forgedData, "plaintext": []byte(`{"refund":1000000}`),
		"other key": foreign, "other stream": producers(t, k, arn, "payments", 1, 1)[0],
	} {
		_, err := dec.Decrypt(ctx, "orders", data)
		require.Error(t, err, name)
		require.True(t, record.IsPermanent(err), "%s: %v", name, err)
	}
	fresh := producers(t, k, arn, "orders", 1, 1)[0] // a data key not cached
	k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, err = dec.Decrypt(ctx, "orders", fresh)
	require.Error(t, err)
	require.False(t, record.IsPermanent(err), "%v", err)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = dec.Decrypt(cctx, "orders", fresh)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, record.IsPermanent(err))
	require.False(t, record.IsPermanent(keycache.ErrRateLimited))
	require.False(t, record.IsPermanent(errors.New("network")))
}

// forgedRecords returns n records as a writer with no KMS rights makes them:
// the body of a real record with a random wrapped key each.
func forgedRecords(t testing.TB, template []byte, n int) [][]byte {
	e, _, err := envelope.Parse(template)
	require.NoError(t, err)
	out := make([][]byte, n)
	for i := range out {
		wk := make([]byte, 150)
		rand.Read(wk)
		f := envelope.Envelope{Salt: e.Salt, Body: e.Body, WrappedKey: wk}
		out[i], err = f.MarshalBinary()
		require.NoError(t, err)
	}
	return out
}

// TestForgedFlood plays a writer with kinesis:PutRecord and no KMS rights
// who puts 5,000 records with 5,000 distinct random wrapped keys on a
// stream, among 100 legitimate ones, against a KMS with 5 ms latency. The
// consumer reads the stream as Lambda does: batches of 500 from a
// checkpoint; permanent failures are set aside, the first transient one
// stops the batch, and the next batch starts there after a 1 s backoff (on
// a fake clock; KMS latency is real).
//
// Every forged record must cost at most one KMS call, no working key may
// be evicted, every legitimate record must decrypt, and KMS calls must stay
// within the rate limit. The figures are logged; BENCHMARKS.md has them.
func TestForgedFlood(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*record.DecryptorOptions)
	}{
		{"defaults (128 new keys a batch, 50 calls/s, burst 256)", func(*record.DecryptorOptions) {}},
		{"no limits", func(o *record.DecryptorOptions) { o.DecryptRate = -1; o.MaxNewKeysPerBatch = 1 << 20 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := kmsfake.New()
			_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
			legit := producers(t, k, arn, "orders", 1, 100)
			forged := forgedRecords(t, legit[0], 5000)
			// 100 legitimate records spread over the flood.
			var stream [][]byte
			for i, f := range forged {
				if i%50 == 0 {
					stream = append(stream, legit[i/50])
				}
				stream = append(stream, f)
			}
			k.SetLatency(5 * time.Millisecond)
			clk := newFakeClock()
			dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) {
				o.AllowedKeys = []string{arn}
				o.Now = clk.Now
				tc.opts(o)
			})
			require.NoError(t, err)
			defer dec.Close()
			ctx := context.Background()
			_, err = dec.Decrypt(ctx, "orders", legit[0]) // a warm consumer
			require.NoError(t, err)
			calls0 := k.Calls("Decrypt")
			runtime.GC()
			var m0 runtime.MemStats
			runtime.ReadMemStats(&m0)

			var (
				checkpoint, rounds, decrypted, rejected int
				wall, maxWall                           time.Duration
				legitWait                               time.Duration // simulated, summed over legitimate records
				start                                   = clk.Now()
			)
			for checkpoint < len(stream) {
				rounds++
				require.Less(t, rounds, 1000, "no progress")
				batch := stream[checkpoint:min(checkpoint+500, len(stream))]
				t0 := time.Now()
				out, err := dec.DecryptBatch(ctx, "orders", batch)
				d := time.Since(t0)
				wall += d
				maxWall = max(maxWall, d)
				failed := map[int]error{}
				var be *record.BatchError
				if errors.As(err, &be) {
					for _, f := range be.Failed {
						failed[f.Index] = f.Err
					}
				} else {
					require.NoError(t, err)
				}
				next := len(batch)
				for i := range batch {
					if err, ok := failed[i]; ok {
						if !record.IsPermanent(err) {
							require.ErrorIs(t, err, keycache.ErrRateLimited)
							next = i
							break
						}
						require.ErrorIs(t, err, envelope.ErrOpen)
						rejected++
						continue
					}
					require.True(t, out[i].Encrypted)
					decrypted++
					legitWait += clk.Now().Sub(start)
				}
				checkpoint += next
				if next < len(batch) {
					clk.Advance(time.Second)
				}
			}
			runtime.GC()
			var m1 runtime.MemStats
			runtime.ReadMemStats(&m1)
			st := dec.Stats()
			calls := k.Calls("Decrypt") - calls0
			elapsed := clk.Now().Sub(start)
			require.Equal(t, 100, decrypted)
			require.Equal(t, 5000, rejected)
			require.Equal(t, int64(5000), calls, "one call per forged wrapped key")
			require.Zero(t, st.Evictions, "no working key evicted")
			if tc.name[0] == 'd' {
				// 256 at once, then 50 a second.
				require.LessOrEqual(t, float64(calls), 256+50*elapsed.Seconds())
			}
			t.Logf("%s: %d KMS calls for 5,000 forged records; %d batches; simulated %v to drain; real decrypt time %v (max %v per batch); legitimate records waited %v on average (simulated); %d evictions; %d refusals held, heap %+.1f MiB",
				tc.name, calls, rounds, elapsed, wall.Round(time.Millisecond), maxWall.Round(time.Millisecond),
				(legitWait / 100).Round(time.Millisecond), st.Evictions, st.Refusals,
				float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc))/(1<<20))
		})
	}
}

// BenchmarkColdBatch decrypts a cold batch of 500 records from 64 producers
// with a 20 ms KMS, and reports the wall time in KMS round trips.
func BenchmarkColdBatch(b *testing.B) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	data := producers(b, k, arn, "orders", 64, 500)
	k.SetLatency(20 * time.Millisecond)
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := dec.DecryptBatch(ctx, "orders", data); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
		dec.Close()
	}
	b.ReportMetric(total.Seconds()/float64(b.N)/0.020, "roundtrips/op")
}
