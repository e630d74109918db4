package keycache_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
)

// TestProducerDefaults checks the documented defaults.
func TestProducerDefaults(t *testing.T) {
	p := newProducer(t, kmsfake.New())
	defer p.Close()
	o := p.Options()
	require.Equal(t, 5*time.Minute, o.TTL)
	require.Equal(t, 15*time.Second, o.RefreshAhead)
	require.Equal(t, 5*time.Second, o.RefreshRetry)
	require.Equal(t, uint64(1)<<32, o.MaxRecordsPerKey)
	require.Zero(t, o.MaxBytesPerKey)
	require.Equal(t, 30*time.Second, o.CallTimeout)
	require.NotNil(t, o.Now)

	c := newConsumer(t, kmsfake.New())
	defer c.Close()
	co := c.Options()
	require.Equal(t, 5*time.Minute, co.TTL)
	require.Equal(t, 10000, co.MaxEntries)
	require.Equal(t, time.Minute, co.NegativeTTL)
	require.Equal(t, 10000, co.MaxFailures)
	require.Equal(t, 50.0, co.DecryptRate)
	require.Equal(t, 256, co.DecryptBurst)
	require.Equal(t, 30*time.Second, co.CallTimeout)
	require.NotNil(t, co.Now)
}

// TestOptionsOutOfRange: a value out of range is an error at construction,
// never a silent clamp.
func TestOptionsOutOfRange(t *testing.T) {
	k := kmsfake.New()
	for name, fn := range map[string]func(*keycache.ProducerOptions){
		"RefreshAhead = TTL":         func(o *keycache.ProducerOptions) { o.TTL = time.Minute; o.RefreshAhead = time.Minute },
		"RefreshAhead > default TTL": func(o *keycache.ProducerOptions) { o.RefreshAhead = time.Hour },
		"negative TTL":               func(o *keycache.ProducerOptions) { o.TTL = -1 },
		"negative RefreshRetry":      func(o *keycache.ProducerOptions) { o.RefreshRetry = -1 },
		"negative CallTimeout":       func(o *keycache.ProducerOptions) { o.CallTimeout = -1 },
	} {
		p, err := keycache.NewProducer(k, fn)
		require.Error(t, err, name)
		require.Nil(t, p, name)
	}
	for name, fn := range map[string]func(*keycache.ConsumerOptions){
		"NegativeTTL > TTL":     func(o *keycache.ConsumerOptions) { o.TTL = 10 * time.Second; o.NegativeTTL = time.Minute },
		"negative TTL":          func(o *keycache.ConsumerOptions) { o.TTL = -1 },
		"negative MaxEntries":   func(o *keycache.ConsumerOptions) { o.MaxEntries = -1 },
		"negative NegativeTTL":  func(o *keycache.ConsumerOptions) { o.NegativeTTL = -1 },
		"negative MaxFailures":  func(o *keycache.ConsumerOptions) { o.MaxFailures = -1 },
		"negative DecryptBurst": func(o *keycache.ConsumerOptions) { o.DecryptBurst = -1 },
		"negative CallTimeout":  func(o *keycache.ConsumerOptions) { o.CallTimeout = -1 },
	} {
		c, err := keycache.NewConsumer(k, fn)
		require.Error(t, err, name)
		require.Nil(t, c, name)
	}
	_, err := keycache.NewProducer(nil)
	require.Error(t, err)
	_, err = keycache.NewConsumer(nil)
	require.Error(t, err)

	// A short TTL shortens the default NegativeTTL with it.
	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.TTL = 10 * time.Second })
	defer c.Close()
	require.Equal(t, 10*time.Second, c.Options().NegativeTTL)
}

// TestProducerTTL uses a data key without pause and checks that it is
// replaced when its TTL, counted from its creation and not from its last
// use, ends. Refresh-ahead is off, so the replacement is made by the first
// caller after expiry.
func TestProducerTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) {
		o.Now = clk.Now
		o.RefreshAhead = -1
	})
	defer p.Close()
	b := binding("orders")

	first, err := p.Key(ctx, arn, b, 10)
	require.NoError(t, err)
	for elapsed := time.Duration(0); elapsed < keycache.DefaultTTL; elapsed += time.Minute {
		key, err := p.Key(ctx, arn, b, 10)
		require.NoError(t, err)
		require.Same(t, first, key, "at %v", elapsed)
		clk.Advance(time.Minute)
		if elapsed+time.Minute == keycache.DefaultTTL {
			clk.Advance(-time.Nanosecond) // the last instant of the TTL
		}
	}
	key, err := p.Key(ctx, arn, b, 10)
	require.NoError(t, err)
	require.Same(t, first, key, "1 ns before the TTL ends")
	require.Equal(t, int64(1), k.Calls("GenerateDataKey"))

	clk.Advance(time.Nanosecond)
	second, err := p.Key(ctx, arn, b, 10)
	require.NoError(t, err)
	require.NotSame(t, first, second, "replaced when the TTL ends")
	require.NotEqual(t, first.WrappedKey(), second.WrappedKey(), "a new data key, not the same one again")
	require.Equal(t, int64(2), k.Calls("GenerateDataKey"))
	require.Equal(t, 1, p.Stats().Entries)

	// The key it replaced is dropped, not destroyed: a caller may still be
	// sealing with it, and must be able to finish, however many
	// replacements later. (Its material is cleared once it is collected.)
	clk.Advance(keycache.DefaultTTL)
	third, err := p.Key(ctx, arn, b, 10)
	require.NoError(t, err)
	require.NotSame(t, second, third)
	for _, old := range []*envelope.Key{first, second} {
		_, err = old.Seal(nil, []byte("pk"), nil)
		require.NoError(t, err, "a replaced key destroyed under its user")
	}

	// Bindings and KMS keys have separate data keys.
	other, err := p.Key(ctx, arn, binding("payments"), 10)
	require.NoError(t, err)
	require.NotSame(t, third, other)
	arn2 := newKey(k)
	other2, err := p.Key(ctx, arn2, b, 10)
	require.NoError(t, err)
	require.NotSame(t, third, other2)
	require.Equal(t, 3, p.Stats().Entries)
}

// TestProducerRefreshAhead checks that the replacement key is fetched in
// the background before expiry, and that no caller waits for it: with a KMS
// that takes 500 ms per call, callers whose context ends after 10 ms still
// get a key throughout the refresh.
func TestProducerRefreshAhead(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.Now = clk.Now })
	defer p.Close()
	b := binding("orders")

	first, err := p.Key(ctx, arn, b, 1) // the only wait on KMS
	require.NoError(t, err)
	k.SetLatency(500 * time.Millisecond)
	impatient := func() *envelope.Key {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		key, err := p.Key(ctx, arn, b, 1)
		require.NoError(t, err, "a caller waited on KMS")
		return key
	}

	clk.Advance(keycache.DefaultTTL - 15*time.Second - time.Nanosecond)
	require.Same(t, first, impatient())
	require.Equal(t, int64(1), k.Calls("GenerateDataKey"), "no refresh before RefreshAhead")

	clk.Advance(time.Nanosecond) // RefreshAhead before expiry
	require.Same(t, first, impatient(), "the current key while the refresh runs")
	waitFor(t, "the refresh to start", func() bool { return k.Calls("GenerateDataKey") == 2 })
	for range 10 {
		clk.Advance(100 * time.Millisecond)
		require.Same(t, first, impatient())
	}
	require.Equal(t, int64(2), k.Calls("GenerateDataKey"), "one refresh for all callers")
	waitFor(t, "the refresh to finish", func() bool { return p.Stats().Refreshes == 2 })

	second := impatient()
	require.NotSame(t, first, second, "the refreshed key is used at once")
	st := p.Stats()
	require.Equal(t, uint64(1), st.Misses, "only the very first call missed")
	require.Equal(t, uint64(13), st.Hits)
	require.Equal(t, uint64(2), st.KMSCalls)

	// The new key's TTL counts from its creation, 15 s before the old key's
	// expiry: it is refreshed 15 s before its own.
	clk.Advance(keycache.DefaultTTL - 15*time.Second - time.Nanosecond)
	require.Same(t, second, impatient())
	require.Equal(t, int64(2), k.Calls("GenerateDataKey"))
	clk.Advance(time.Nanosecond)
	require.Same(t, second, impatient())
	waitFor(t, "the second refresh", func() bool {
		key := impatient() // starts the refresh if the last one had not quite ended
		return p.Stats().Refreshes == 3 || key != second
	})
	waitFor(t, "the second refresh", func() bool { return impatient() != second })
}

// TestProducerOutage: a KMS outage that ends before the current key expires
// fails no record and makes no caller wait; background refreshes are retried
// every RefreshRetry meanwhile, and one after the outage replaces the key
// before it expires.
func TestProducerOutage(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.Now = clk.Now })
	defer p.Close()
	b := binding("orders")

	first, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
	clk.Advance(4*time.Minute + 40*time.Second)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, -1)

	// One record a second from 4:40 to 4:58; the outage ends at 4:52.
	// Refreshes are due from 4:45 on, every 5 s after a failure.
	for s := 40; s < 59; s++ {
		if s == 52 {
			k.ClearFaults()
		}
		key, err := p.Key(ctx, arn, b, 1)
		require.NoError(t, err, "at 4:%d", s)
		if s <= 52 {
			require.Same(t, first, key, "at 4:%d, during the outage", s)
		}
		if s == 45 {
			waitFor(t, "the first refresh to fail", func() bool { return p.Stats().Failures["Throttling"] == 1 })
		}
		// Let a refresh started now end before the clock moves (best
		// effort: a refresh that reads the clock late retries a second
		// later, which this test allows).
		waitFor(t, "refreshes to settle", func() bool { return settled(p.Stats()) })
		clk.Advance(time.Second)
	}
	// At 4:59, a refresh after the outage has replaced the key, or will: a
	// record now uses the new key without waiting for KMS.
	waitFor(t, "a refresh to succeed", func() bool {
		_, err := p.Key(ctx, arn, b, 1)
		require.NoError(t, err)
		return p.Stats().Refreshes == 2
	})
	key, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
	require.NotSame(t, first, key)
	st := p.Stats()
	require.Equal(t, uint64(1), st.Misses, "no record waited on KMS")
	require.GreaterOrEqual(t, st.Failures["Throttling"], uint64(1))
	require.LessOrEqual(t, st.Failures["Throttling"], uint64(2), "refreshes are retried every RefreshRetry, not on every record")
	require.Equal(t, st.Failures["Throttling"]+2, st.KMSCalls)
}

// TestProducerFailsClosed: once the key has expired and KMS is down, every
// call fails, without a key; when KMS is back, the next call succeeds.
func TestProducerFailsClosed(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	// No refresh-ahead: the key is replaced by the first caller after
	// expiry (TestProducerOutage covers refreshes during an outage).
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.Now = clk.Now; o.RefreshAhead = -1 })
	defer p.Close()
	b := binding("orders")

	first, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 503}, -1)
	clk.Advance(keycache.DefaultTTL - time.Nanosecond)
	key, err := p.Key(ctx, arn, b, 1) // still valid, KMS down or not
	require.NoError(t, err)
	require.Same(t, first, key)

	clk.Advance(time.Nanosecond) // expired
	for i := range 3 {
		key, err := p.Key(ctx, arn, b, 1)
		require.Error(t, err, "call %d after expiry", i)
		require.Nil(t, key, "an expired key is never used, even with KMS down")
		var ke *kmsiface.Error
		require.ErrorAs(t, err, &ke)
		require.Equal(t, "GenerateDataKey", ke.Op)
	}
	require.Equal(t, 0, p.Stats().Entries)
	require.Equal(t, int64(4), k.Calls("GenerateDataKey"), "every caller after expiry asks KMS again")

	k.ClearFaults()
	key, err = p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
	require.NotSame(t, first, key)
	require.Equal(t, 1, p.Stats().Entries)

	// Disabling the KMS key does not stop the data key in use (as with
	// Kinesis SSE), but it stops the next one.
	require.NoError(t, k.SetKeyState(arn, "Disabled"))
	same, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
	require.Same(t, key, same)
	clk.Advance(keycache.DefaultTTL)
	_, err = p.Key(ctx, arn, b, 1)
	require.ErrorIs(t, err, kmsiface.ErrKeyDisabled)
	require.NoError(t, k.SetKeyState(arn, "Enabled"))
	_, err = p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
}

// TestProducerCoalescing starts 64 goroutines on a cold cache at once: they
// share one GenerateDataKey call and get the same key.
func TestProducerCoalescing(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	k.SetLatency(50 * time.Millisecond) // so that they pile up
	p := newProducer(t, k)
	defer p.Close()
	b := binding("orders")

	const n = 64
	keys := make([]*envelope.Key, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			var err error
			keys[i], err = p.Key(ctx, arn, b, 1)
			assert.NoError(t, err)
		})
	}
	close(start)
	wg.Wait()
	require.Equal(t, int64(1), k.Calls("GenerateDataKey"))
	for _, key := range keys {
		require.Same(t, keys[0], key)
	}
	st := p.Stats()
	require.Equal(t, uint64(1), st.KMSCalls)
	require.Equal(t, uint64(n), st.Hits+st.Misses)
	require.GreaterOrEqual(t, st.Misses, uint64(1))
}

// TestProducerCoalescingFailure: a failed call is shared too, and not
// remembered.
func TestProducerCoalescingFailure(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Delay: 50 * time.Millisecond, Code: "ThrottlingException"}, 1)
	p := newProducer(t, k)
	defer p.Close()
	b := binding("orders")

	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			<-start
			key, err := p.Key(ctx, arn, b, 1)
			if err == nil {
				// Arrived after the failure: a new call succeeded.
				assert.NotNil(t, key)
				return
			}
			assert.ErrorIs(t, err, kmsiface.ErrThrottling)
			assert.Nil(t, key)
		})
	}
	close(start)
	wg.Wait()
	require.Equal(t, map[string]uint64{"Throttling": 1}, p.Stats().Failures)
	_, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
}

// TestProducerCallerContext: a caller whose context ends returns at once,
// and the call it started goes on for the others.
func TestProducerCallerContext(t *testing.T) {
	k := kmsfake.New()
	arn := newKey(k)
	k.SetLatency(200 * time.Millisecond)
	p := newProducer(t, k)
	defer p.Close()
	b := binding("orders")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	key, err := p.Key(ctx, arn, b, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Nil(t, key)
	waitFor(t, "the call to finish", func() bool { return p.Stats().Refreshes == 1 })
	k.SetLatency(0)
	_, err = p.Key(context.Background(), arn, b, 1)
	require.NoError(t, err)
	require.Equal(t, int64(1), k.Calls("GenerateDataKey"), "the abandoned call still filled the cache")
}

// TestProducerCallTimeout: CallTimeout bounds a KMS call that hangs.
func TestProducerCallTimeout(t *testing.T) {
	k := kmsfake.New()
	arn := newKey(k)
	k.SetLatency(time.Hour)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.CallTimeout = 20 * time.Millisecond })
	defer p.Close()
	_, err := p.Key(context.Background(), arn, binding("orders"), 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var ke *kmsiface.Error
	require.ErrorAs(t, err, &ke)
}

// TestProducerMaxRecordsPerKey seals records one at a time and checks that
// no data key seals more than MaxRecordsPerKey of them, and that keys are
// not retired much earlier.
func TestProducerMaxRecordsPerKey(t *testing.T) {
	const limit, records = 800, 8000
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.MaxRecordsPerKey = limit })
	defer p.Close()
	b := binding("orders")

	var order []*envelope.Key
	perKey := map[*envelope.Key]int{}
	for range records {
		key, err := p.Key(ctx, arn, b, 100)
		require.NoError(t, err)
		if perKey[key] == 0 {
			order = append(order, key)
		}
		perKey[key]++
	}
	for i, key := range order {
		require.LessOrEqual(t, perKey[key], limit, "key %d", i)
		if i < len(order)-1 {
			// Counted in 8 stripes of 100: retired when one is full.
			require.GreaterOrEqual(t, perKey[key], limit/8, "key %d retired too early", i)
		}
	}
	require.GreaterOrEqual(t, len(order), records/limit)
	require.Equal(t, int64(len(order)), k.Calls("GenerateDataKey"))
	t.Logf("%d records on %d keys (limit %d per key)", records, len(order), limit)
}

// TestProducerMaxBytesPerKey does the same for the byte limit.
func TestProducerMaxBytesPerKey(t *testing.T) {
	const limit, size, records = 80 << 10, 1 << 10, 2000
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.MaxBytesPerKey = limit })
	defer p.Close()
	b := binding("orders")

	var order []*envelope.Key
	perKey := map[*envelope.Key]int{}
	for range records {
		key, err := p.Key(ctx, arn, b, size)
		require.NoError(t, err)
		if perKey[key] == 0 {
			order = append(order, key)
		}
		perKey[key] += size
	}
	for i, key := range order {
		require.LessOrEqual(t, perKey[key], limit, "key %d", i)
	}
	require.GreaterOrEqual(t, len(order), records*size/limit)
	require.Equal(t, int64(len(order)), k.Calls("GenerateDataKey"))

	// Empty records count nothing against the byte limit.
	key, err := p.Key(ctx, arn, b, 0)
	require.NoError(t, err)
	for range 1000 {
		same, err := p.Key(ctx, arn, b, 0)
		require.NoError(t, err)
		require.Same(t, key, same)
	}
}

// TestProducerSmallLimits: limits smaller than the number of counter
// stripes, or records larger than a stripe's share of MaxBytesPerKey, must
// still let every record be sealed.
func TestProducerSmallLimits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		records, bytes   uint64
		size, perKeyWant int
	}{
		{"MaxRecordsPerKey=1", 1, 0, 10, 1},
		{"MaxRecordsPerKey=4", 4, 0, 10, 4},
		{"MaxBytesPerKey=64KiB/record=10KiB", 0, 64 << 10, 10 << 10, 6},
		{"MaxBytesPerKey=record", 0, 1000, 1000, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			k := kmsfake.New()
			arn := newKey(k)
			p := newProducer(t, k, func(o *keycache.ProducerOptions) {
				o.MaxRecordsPerKey = tc.records
				o.MaxBytesPerKey = tc.bytes
			})
			defer p.Close()
			perKey := map[*envelope.Key]int{}
			for i := range 20 {
				key, err := p.Key(ctx, arn, binding("orders"), tc.size)
				require.NoError(t, err, "record %d, after %d GenerateDataKey calls", i, k.Calls("GenerateDataKey"))
				perKey[key]++
				require.LessOrEqual(t, perKey[key], tc.perKeyWant)
			}
			require.LessOrEqual(t, k.Calls("GenerateDataKey"), int64(20))
		})
	}
	t.Run("record larger than MaxBytesPerKey", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		k := kmsfake.New()
		arn := newKey(k)
		p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.MaxBytesPerKey = 1000 })
		defer p.Close()
		key, err := p.Key(ctx, arn, binding("orders"), 2000)
		require.ErrorContains(t, err, "more than MaxBytesPerKey 1000", "a record that no key may seal")
		require.Nil(t, key)
		require.Zero(t, k.Calls("GenerateDataKey"))
	})
}

// TestProducerConcurrent seals records from 16 goroutines while the clock
// runs through many TTLs and keys are retired by MaxRecordsPerKey, then
// opens every record with a consumer: under -race this checks the
// concurrency contract, and that every sealed record is authentic.
func TestProducerConcurrent(t *testing.T) {
	producerConcurrent(t, 2000)
}

// TestProducerContendedLimit: 16 goroutines ask a cold producer for a key at
// once, with MaxRecordsPerKey 1, so that each needs a data key of its own.
// Each call of GenerateDataKey serves one of them; every caller must get a
// key in the end. A bound on the rounds a caller waits (rather than on the
// calls it sees fail) fails valid records of the callers served last.
func TestProducerContendedLimit(t *testing.T) {
	const n = 16
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	k.SetLatency(20 * time.Millisecond) // so that they pile up
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.MaxRecordsPerKey = 1 })
	defer p.Close()
	b := binding("orders")

	keys := make([]*envelope.Key, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			var err error
			keys[i], err = p.Key(ctx, arn, b, 1)
			assert.NoError(t, err, "caller %d", i)
		})
	}
	close(start)
	wg.Wait()
	seen := map[*envelope.Key]bool{}
	for _, key := range keys {
		require.NotNil(t, key)
		require.False(t, seen[key], "a key given to two callers with MaxRecordsPerKey 1")
		seen[key] = true
	}
	require.Equal(t, int64(n), k.Calls("GenerateDataKey"))
}

// producerConcurrent runs 16 goroutines of 500 records each on a producer
// with the given MaxRecordsPerKey and a 1-minute TTL, the clock moving 20 s
// every 50 records of one goroutine, and opens every record with a
// consumer.
func producerConcurrent(t *testing.T, maxRecords uint64) {
	const goroutines, perG = 16, 500
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) {
		o.Now = clk.Now
		o.MaxRecordsPerKey = maxRecords
		o.TTL = time.Minute
	})
	defer p.Close()
	b := binding("orders")

	envs := make([][][]byte, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				if g == 0 && i%50 == 0 {
					clk.Advance(20 * time.Second)
				}
				key, err := p.Key(ctx, arn, b, 8)
				if !assert.NoError(t, err, "goroutine %d, record %d", g, i) {
					return
				}
				env, err := key.Seal(nil, []byte("pk"), []byte("payload"))
				if !assert.NoError(t, err) {
					return
				}
				envs[g] = append(envs[g], env)
				_ = p.Stats()
			}
		})
	}
	wg.Wait()

	c := newConsumer(t, k, loose)
	defer c.Close()
	wrapped := map[string]int{}
	for _, g := range envs {
		require.Len(t, g, perG)
		for _, env := range g {
			e, _, err := envelope.Parse(env)
			require.NoError(t, err)
			key, keyARN, err := c.Key(ctx, e.WrappedKey, b)
			require.NoError(t, err)
			require.Equal(t, arn, keyARN)
			out, n, err := key.Open(nil, &e)
			require.NoError(t, err)
			require.Equal(t, "pkpayload", string(out))
			require.Equal(t, 2, n)
			wrapped[string(e.WrappedKey)]++
		}
	}
	for _, n := range wrapped {
		require.LessOrEqual(t, uint64(n), maxRecords, "records sealed under one data key")
	}
	require.GreaterOrEqual(t, uint64(len(wrapped)), goroutines*perG/maxRecords)
	require.Equal(t, uint64(len(wrapped)), c.Stats().KMSCalls)
	t.Logf("%d records on %d data keys, %d GenerateDataKey calls", goroutines*perG, len(wrapped), k.Calls("GenerateDataKey"))
}

// TestProducerOversizedRecordKeepsKey: a record over MaxBytesPerKey is
// refused with an error without counting against the current key, so
// interleaving such records with normal ones costs no KMS call.
func TestProducerOversizedRecordKeepsKey(t *testing.T) {
	const limit = 1 << 20
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.MaxBytesPerKey = limit })
	defer p.Close()
	b := binding("orders")
	first, err := p.Key(ctx, arn, b, 100)
	require.NoError(t, err)
	for range 10 {
		key, err := p.Key(ctx, arn, b, limit+1)
		require.ErrorContains(t, err, "more than MaxBytesPerKey")
		require.Nil(t, key)
		key, err = p.Key(ctx, arn, b, 100)
		require.NoError(t, err)
		require.Same(t, first, key)
	}
	require.Equal(t, int64(1), k.Calls("GenerateDataKey"))
}

// TestProducerDropsIdleSlots: a producer that has written to many streams
// keeps no state for those whose key expired, once its next KMS call
// completes.
func TestProducerDropsIdleSlots(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.Now = clk.Now })
	defer p.Close()
	for i := range 200 {
		_, err := p.Key(ctx, arn, binding(fmt.Sprint("stream-", i)), 1)
		require.NoError(t, err)
	}
	require.Equal(t, 200, p.Slots())
	clk.Advance(p.Options().TTL)
	_, err := p.Key(ctx, arn, binding("orders"), 1)
	require.NoError(t, err)
	// The fetch drops idle slots after it has handed the key over.
	waitFor(t, "idle slots to be dropped", func() bool { return p.Slots() == 1 })
	require.Equal(t, 1, p.Stats().Entries)
}
