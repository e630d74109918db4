package keycache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
)

// loose makes a consumer trust every KMS key and call KMS at any rate, for
// the tests that are about neither.
func loose(o *keycache.ConsumerOptions) { o.InsecureAllowAnyKey = true; o.DecryptRate = -1 }

// sealed is a record sealed under one data key, and that key's wrapped
// form, as a consumer finds it on a stream.
type sealed struct {
	wk  []byte
	env envelope.Envelope
	pk  string
}

// seal makes n records of b, each under its own data key of arn.
func seal(t testing.TB, k *kmsfake.KMS, arn string, b keycache.Binding, n int) []sealed {
	t.Helper()
	out := make([]sealed, n)
	for i := range out {
		dk, err := k.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{
			KeyId: &arn, KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: b.Context,
		})
		require.NoError(t, err)
		key, err := envelope.NewKey(dk.Plaintext, dk.CiphertextBlob, []byte(b.AD))
		require.NoError(t, err)
		pk := fmt.Sprintf("pk-%d", i)
		raw, err := key.Seal(nil, []byte(pk), []byte("payload"))
		require.NoError(t, err)
		e, _, err := envelope.Parse(raw)
		require.NoError(t, err)
		out[i] = sealed{wk: dk.CiphertextBlob, env: e, pk: pk}
	}
	return out
}

// open opens r with key.
func (r *sealed) open(key *envelope.Key) error {
	out, n, err := key.Open(nil, &r.env)
	if err != nil {
		return err
	}
	if string(out[:n]) != r.pk || string(out[n:]) != "payload" {
		return errors.New("wrong plaintext")
	}
	return nil
}

// TestConsumerTTL checks that an unwrapped key is kept for the TTL from its
// creation, then unwrapped again, and that the expired one is destroyed.
func TestConsumerTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.Now = clk.Now })
	defer c.Close()
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.Now = clk.Now })
	defer p.Close()
	pkey, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)

	first, keyARN, err := c.Key(ctx, pkey.WrappedKey(), b)
	require.NoError(t, err)
	require.Equal(t, arn, keyARN)
	sealOpen(t, pkey, first)
	for range 4 {
		clk.Advance(time.Minute)
		key, _, err := c.Key(ctx, pkey.WrappedKey(), b)
		require.NoError(t, err)
		require.Same(t, first, key)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	key, _, err := c.Key(ctx, pkey.WrappedKey(), b)
	require.NoError(t, err)
	require.Same(t, first, key, "kept for the whole TTL")
	require.Equal(t, int64(1), k.Calls("Decrypt"))

	clk.Advance(time.Nanosecond)
	second, keyARN, err := c.Key(ctx, pkey.WrappedKey(), b)
	require.NoError(t, err)
	require.Equal(t, arn, keyARN)
	require.NotSame(t, first, second)
	require.Equal(t, int64(2), k.Calls("Decrypt"), "unwrapped again after the TTL")
	sealOpen(t, pkey, second)
	sealOpen(t, pkey, first) // dropped, not destroyed under a caller still using it
	require.Equal(t, 1, c.Stats().Entries)

	// The same wrapped key under another binding is another entry, and
	// KMS refuses it for that binding's context.
	_, _, err = c.Key(ctx, pkey.WrappedKey(), binding("payments"))
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext), "%v", err)
	require.Equal(t, 1, c.Stats().Entries, "a refusal is no entry")
	require.Equal(t, 1, c.Stats().Refusals)
}

// TestConsumerCoalescing: 64 goroutines asking for the same wrapped key at
// once make one Decrypt call; over 8 wrapped keys, 8.
func TestConsumerCoalescing(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	recs := seal(t, k, arn, b, 8)
	k.SetLatency(50 * time.Millisecond)
	for _, distinct := range []int{1, 8} {
		t.Run(fmt.Sprint(distinct), func(t *testing.T) {
			c := newConsumer(t, k, loose)
			defer c.Close()
			calls := k.Calls("Decrypt")
			const n = 64
			keys := make([]*envelope.Key, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					var err error
					keys[i], _, err = c.Key(ctx, recs[i%distinct].wk, b)
					assert.NoError(t, err)
				})
			}
			close(start)
			wg.Wait()
			require.Equal(t, int64(distinct), k.Calls("Decrypt")-calls)
			for i, key := range keys {
				require.Same(t, keys[i%distinct], key)
				require.NoError(t, recs[i%distinct].open(key))
			}
			st := c.Stats()
			require.Equal(t, uint64(distinct), st.KMSCalls)
			require.Equal(t, uint64(n), st.Hits+st.Misses)
			require.Equal(t, distinct, st.Entries)
		})
	}
}

// TestConsumerCallerContext: a caller whose context ends returns at once;
// the Decrypt goes on and fills the cache for the next caller.
func TestConsumerCallerContext(t *testing.T) {
	k := kmsfake.New()
	b := binding("orders")
	recs := seal(t, k, newKey(k), b, 1)
	k.SetLatency(200 * time.Millisecond)
	c := newConsumer(t, k, loose)
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	key, _, err := c.Key(ctx, recs[0].wk, b)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Nil(t, key)
	waitFor(t, "the Decrypt to finish", func() bool { return c.Stats().Entries == 1 && k.Calls("Decrypt") == 1 })
	k.SetLatency(0)
	key, _, err = c.Key(context.Background(), recs[0].wk, b)
	require.NoError(t, err)
	require.NoError(t, recs[0].open(key))
	require.Equal(t, int64(1), k.Calls("Decrypt"))
}

// TestConsumerLRU fills a consumer with ten times MaxEntries wrapped keys
// while one key is used between every two others: the bound holds, every
// key beyond it is counted as an eviction and destroyed, and the key in
// use is never evicted.
func TestConsumerLRU(t *testing.T) {
	const maxEntries = 64
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	recs := seal(t, k, arn, b, 10*maxEntries+1)
	hot, cold := recs[0], recs[1:]
	c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.MaxEntries = maxEntries })
	defer c.Close()

	var keys []*envelope.Key
	for i, r := range cold {
		key, _, err := c.Key(ctx, hot.wk, b)
		require.NoError(t, err)
		require.NoError(t, hot.open(key))
		key, _, err = c.Key(ctx, r.wk, b)
		require.NoError(t, err)
		require.NoError(t, r.open(key))
		keys = append(keys, key)
		st := c.Stats()
		require.LessOrEqual(t, st.Entries, maxEntries, "after %d keys", i+2)
		require.Equal(t, uint64(i+2), uint64(st.Entries)+st.Evictions, "every key is held or evicted")
	}
	st := c.Stats()
	t.Logf("%d entries, %d evictions", st.Entries, st.Evictions)
	require.Equal(t, uint64(len(recs)), st.KMSCalls)
	require.Greater(t, st.Evictions, uint64(len(recs)-maxEntries-1))

	// Evicted keys are dropped, not destroyed: a caller that got one
	// before its eviction can still open its records.
	for i, key := range keys {
		require.NoError(t, cold[i].open(key), "key %d", i)
	}

	// The hot key was never unwrapped again; the first cold key was
	// evicted long ago and is.
	_, _, err := c.Key(ctx, hot.wk, b)
	require.NoError(t, err)
	require.Equal(t, uint64(len(recs)), c.Stats().KMSCalls, "the most recently used key was evicted")
	key, _, err := c.Key(ctx, cold[0].wk, b)
	require.NoError(t, err)
	require.NoError(t, cold[0].open(key))
	require.Equal(t, uint64(len(recs)+1), c.Stats().KMSCalls)
}

// TestConsumerMaxEntriesBound: Stats().Entries never exceeds MaxEntries,
// whatever its value.
func TestConsumerMaxEntriesBound(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	recs := seal(t, k, arn, b, 400)
	for _, maxEntries := range []int{1, 10, 20, 100} {
		t.Run(fmt.Sprint(maxEntries), func(t *testing.T) {
			c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.MaxEntries = maxEntries })
			defer c.Close()
			for i, r := range recs {
				_, _, err := c.Key(ctx, r.wk, b)
				require.NoError(t, err)
				require.LessOrEqual(t, c.Stats().Entries, maxEntries, "after %d keys", i+1)
			}
		})
	}
}

// TestConsumerStrict: with AllowedKeyIDs, a data key of any other KMS key
// is refused, reported with its ARN, remembered (no second Decrypt) and
// counted as NotAllowed; the allowed keys work.
func TestConsumerStrict(t *testing.T) {
	ctx := context.Background()
	k := &spyKMS{KMS: kmsfake.New()}
	allowed1, allowed2, other := newKey(k.KMS), newKey(k.KMS), newKey(k.KMS)
	b := binding("orders")
	good1, good2 := seal(t, k.KMS, allowed1, b, 1)[0], seal(t, k.KMS, allowed2, b, 1)[0]
	bad := seal(t, k.KMS, other, b, 1)[0]

	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{allowed1, allowed2} })
	defer c.Close()
	for _, r := range []sealed{good1, good2} {
		key, _, err := c.Key(ctx, r.wk, b)
		require.NoError(t, err)
		require.NoError(t, r.open(key))
	}
	for range 3 {
		key, keyARN, err := c.Key(ctx, bad.wk, b)
		require.ErrorIs(t, err, keycache.ErrNotAllowed)
		require.Nil(t, key)
		require.Empty(t, keyARN, "KMS refuses it without naming it: each allowed key is pinned")
	}
	st := c.Stats()
	// good1: 1 call; good2: key 1 refused, then key 2; bad: both refused.
	require.Equal(t, uint64(5), st.KMSCalls, "a refused key is remembered")
	require.Equal(t, map[string]uint64{"NotAllowed": 1}, st.Failures)
	require.Equal(t, uint64(2), st.Hits)

	// A key ID is not an ARN: the allowlist names keys as KMS reports
	// them (DecryptOutput.KeyId is always an ARN).
	keyID := allowed1[len(allowed1)-36:]
	byID := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{keyID, allowed2} })
	defer byID.Close()
	_, _, err := byID.Key(ctx, good1.wk, b)
	require.ErrorIs(t, err, keycache.ErrNotAllowed)

	// With exactly one allowed key, it is sent as the KeyId of Decrypt, so
	// that KMS itself refuses any other key.
	var sentKeyIDs []string
	var mu sync.Mutex
	one := newConsumer(t, &keyIDRecorder{spyKMS: k, got: &sentKeyIDs, mu: &mu},
		func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{allowed1} })
	defer one.Close()
	key, keyARN, err := one.Key(ctx, good1.wk, b)
	require.NoError(t, err)
	require.Equal(t, allowed1, keyARN)
	require.NoError(t, good1.open(key))
	key, _, err = one.Key(ctx, bad.wk, b)
	require.Error(t, err)
	require.Nil(t, key)
	mu.Lock()
	require.Equal(t, []string{allowed1, allowed1}, sentKeyIDs)
	mu.Unlock()
}

// keyIDRecorder records the KeyId of every Decrypt call.
type keyIDRecorder struct {
	*spyKMS
	mu  *sync.Mutex
	got *[]string
}

func (r *keyIDRecorder) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	r.mu.Lock()
	if in.KeyId != nil {
		*r.got = append(*r.got, *in.KeyId)
	} else {
		*r.got = append(*r.got, "")
	}
	r.mu.Unlock()
	return r.spyKMS.Decrypt(ctx, in, optFns...)
}

// TestConsumerStrictSingleKey: with one allowed key, a data key of another
// KMS key is refused by KMS (IncorrectKeyException), and the consumer
// reports it as it documents, as ErrNotAllowed, remembered, and counted as
// NotAllowed: not as an invalid ciphertext, which package record would
// report as an authentication failure.
func TestConsumerStrictSingleKey(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	allowed, other := newKey(k), newKey(k)
	b := binding("orders")
	bad := seal(t, k, other, b, 1)[0]
	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{allowed} })
	defer c.Close()
	for range 2 {
		key, _, err := c.Key(ctx, bad.wk, b)
		require.ErrorIs(t, err, keycache.ErrNotAllowed)
		require.False(t, errors.Is(err, kmsiface.ErrInvalidCiphertext) && !errors.Is(err, keycache.ErrNotAllowed))
		require.Nil(t, key)
	}
	st := c.Stats()
	require.Equal(t, map[string]uint64{"NotAllowed": 1}, st.Failures)
	require.Equal(t, uint64(1), st.KMSCalls)
}

// TestConsumerNegativeCache: a wrapped key that KMS refuses as an invalid
// ciphertext is remembered for at most a minute (and at most the TTL), so a
// flood of bad records costs one Decrypt each; transient failures are not
// remembered.
func TestConsumerNegativeCache(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	good := seal(t, k, arn, b, 1)[0]
	garbage := make([]byte, len(good.wk))
	rand.Read(garbage)
	tampered := bytes.Clone(good.wk)
	tampered[len(tampered)-1] ^= 1

	c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.Now = clk.Now })
	defer c.Close()
	for _, wk := range [][]byte{garbage, tampered} {
		calls := k.Calls("Decrypt")
		for range 5 {
			key, _, err := c.Key(ctx, wk, b)
			require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext), "%v", err)
			require.Nil(t, key)
			var ke *kmsiface.Error
			require.ErrorAs(t, err, &ke)
		}
		require.Equal(t, int64(1), k.Calls("Decrypt")-calls, "remembered")
	}
	require.Equal(t, map[string]uint64{"InvalidCiphertext": 2}, c.Stats().Failures)
	require.Equal(t, 0, c.Stats().Entries, "refusals are no entries")
	require.Equal(t, 2, c.Stats().Refusals)

	// The good key, and the good key under the wrong binding.
	key, _, err := c.Key(ctx, good.wk, b)
	require.NoError(t, err)
	require.NoError(t, good.open(key))
	_, _, err = c.Key(ctx, good.wk, binding("payments"))
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
	calls := k.Calls("Decrypt")

	// A refusal lives a minute after its last lookup, and at most ten
	// minutes after KMS gave it.
	t0 := clk.Now()
	clk.Advance(time.Minute - time.Nanosecond)
	_, _, err = c.Key(ctx, garbage, b)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
	require.Equal(t, calls, k.Calls("Decrypt"))
	clk.Advance(time.Nanosecond)
	_, _, err = c.Key(ctx, tampered, b)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
	require.Equal(t, calls+1, k.Calls("Decrypt"), "forgotten a minute after it was last looked up")
	for clk.Now().Sub(t0) < 10*time.Minute-50*time.Second {
		clk.Advance(50 * time.Second)
		_, _, err = c.Key(ctx, garbage, b)
		require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
		require.Equal(t, calls+1, k.Calls("Decrypt"), "kept alive by its lookups")
	}
	clk.Advance(10*time.Minute - clk.Now().Sub(t0))
	_, _, err = c.Key(ctx, garbage, b)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
	require.Equal(t, calls+2, k.Calls("Decrypt"), "asked again ten minutes after the refusal")

	// With a TTL under a minute, the TTL bounds the negative entry too.
	short := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.Now = clk.Now; o.TTL = 10 * time.Second })
	defer short.Close()
	calls = k.Calls("Decrypt")
	_, _, err = short.Key(ctx, garbage, b)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
	clk.Advance(10 * time.Second)
	_, _, _ = short.Key(ctx, garbage, b)
	require.Equal(t, calls+2, k.Calls("Decrypt"))
	clk.Advance(10*time.Second - time.Nanosecond)
	_, _, _ = short.Key(ctx, garbage, b)
	require.Equal(t, calls+2, k.Calls("Decrypt"))

	// Transient: one throttled call, then success at the next lookup.
	other := seal(t, k, arn, b, 1)[0]
	k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, _, err = c.Key(ctx, other.wk, b)
	require.ErrorIs(t, err, kmsiface.ErrThrottling)
	key, _, err = c.Key(ctx, other.wk, b)
	require.NoError(t, err)
	require.NoError(t, other.open(key))
}

// TestConsumerStats checks every counter after a known sequence of lookups.
func TestConsumerStats(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	recs := seal(t, k, arn, b, 3)
	c := newConsumer(t, k, loose)
	defer c.Close()
	require.Equal(t, keycache.Stats{Failures: map[string]uint64{}}, c.Stats())

	for range 3 {
		_, _, err := c.Key(ctx, recs[0].wk, b) // 1 miss, 2 hits
		require.NoError(t, err)
	}
	_, _, err := c.Key(ctx, recs[1].wk, b) // miss
	require.NoError(t, err)
	k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, _, err = c.Key(ctx, recs[2].wk, b) // miss, failed
	require.Error(t, err)
	_, _, err = c.Key(ctx, recs[2].wk, b) // miss
	require.NoError(t, err)
	_, _, err = c.Key(ctx, []byte("not a wrapped key"), b) // miss, failed, remembered
	require.Error(t, err)
	_, _, err = c.Key(ctx, []byte("not a wrapped key"), b) // hit, failed
	require.Error(t, err)

	require.Equal(t, keycache.Stats{
		Hits:     3,
		Misses:   5,
		KMSCalls: 5,
		Failures: map[string]uint64{"Throttling": 1, "InvalidCiphertext": 1},
		Entries:  3,
		Refusals: 1,
	}, c.Stats())
}

// TestConsumerConcurrent looks up 200 wrapped keys from 32 goroutines, in
// random order, through a cache of 32 entries with a clock that expires
// them, and opens a record with every key it gets: under -race this checks
// the concurrency contract, and that neither eviction nor expiry ever makes
// a key fail its caller (as envelope.ErrKeyDestroyed, or as ErrOpen for a
// valid record) or hands out the key of another wrapped key.
func TestConsumerConcurrent(t *testing.T) {
	const goroutines, lookups = 32, 400
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	b := binding("orders")
	recs := seal(t, k, newKey(k), b, 200)
	c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) {
		o.MaxEntries = 32
		o.Now = clk.Now
		o.TTL = time.Minute
	})
	defer c.Close()

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lookups {
				if g == 0 && i%20 == 0 {
					clk.Advance(10 * time.Second)
				}
				r := &recs[mrand.IntN(len(recs))]
				key, _, err := c.Key(ctx, r.wk, b)
				if !assert.NoError(t, err) {
					return
				}
				if !assert.Equal(t, r.wk, key.WrappedKey(), "the key of another wrapped key") {
					return
				}
				if !assert.NoError(t, r.open(key), "a valid record did not open with its key") {
					return
				}
			}
			_ = c.Stats()
		})
	}
	wg.Wait()
	st := c.Stats()
	require.Empty(t, st.Failures)
	require.LessOrEqual(t, st.Entries, 32, "the bound, once no call is in flight")
	t.Logf("%d lookups: %d hits, %d misses, %d Decrypt calls, %d evictions", goroutines*lookups, st.Hits, st.Misses, st.KMSCalls, st.Evictions)
}

// TestConsumerDoneContextStartsNoCall: a caller whose context has already
// ended gets its error on a miss and starts no Decrypt, so abandoned batches
// cannot leave one background KMS call per wrapped key behind. A hit still
// returns the cached key.
func TestConsumerDoneContextStartsNoCall(t *testing.T) {
	k := kmsfake.New()
	b := binding("orders")
	arn := newKey(k)
	recs := seal(t, k, arn, b, 1)
	c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.MaxEntries = 16 })
	defer c.Close()
	key, _, err := c.Key(context.Background(), recs[0].wk, b)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 500 {
		_, _, err := c.Key(ctx, wrap(t, k, arn, b), b)
		require.ErrorIs(t, err, context.Canceled)
	}
	require.Equal(t, int64(1), k.Calls("Decrypt"))
	require.Equal(t, 1, c.Stats().Entries)
	hit, _, err := c.Key(ctx, recs[0].wk, b)
	require.NoError(t, err)
	require.Same(t, key, hit)
}

// TestConsumerBoundAfterCallsInFlight: entries whose Decrypt is in flight
// are spared by eviction, so the cache may hold more than MaxEntries while
// calls run; once they are over, it holds MaxEntries again, keeping the
// latest fetched.
func TestConsumerBoundAfterCallsInFlight(t *testing.T) {
	k := kmsfake.New()
	b := binding("orders")
	recs := seal(t, k, newKey(k), b, 3)
	k.SetLatency(50 * time.Millisecond)
	c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.MaxEntries = 1 })
	defer c.Close()
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() {
			_, _, err := c.Key(context.Background(), recs[i].wk, b)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	waitFor(t, "the bound", func() bool { return c.Stats().Entries == 1 })
	require.Equal(t, int64(3), k.Calls("Decrypt"))
}
