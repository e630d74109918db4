package keycache_test

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
)

// floodKeys is the number of distinct wrapped keys of the flood: 50,000, or
// 200,000 with KSSE_LOAD=full.
func floodKeys() int {
	if os.Getenv("KSSE_LOAD") == "full" {
		return 200_000
	}
	if testing.Short() {
		return 10_000
	}
	return 50_000
}

// floodSampler samples the heap and a cache's entry count until stopped.
type floodSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peakHeap atomic.Uint64 // HeapAlloc
	peakEnts atomic.Int64
}

func startFloodSampler(c *keycache.Consumer) *floodSampler {
	s := &floodSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > s.peakHeap.Load() {
				s.peakHeap.Store(m.HeapAlloc)
			}
			if n := int64(c.Stats().Entries); n > s.peakEnts.Load() {
				s.peakEnts.Store(n)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *floodSampler) finish() {
	close(s.stop)
	<-s.done
}

// TestConsumerFlood plays an attacker who can write to the stream and seals
// every record under a different data key: a consumer then sees 50,000
// distinct wrapped keys (each a real KMS ciphertext for the stream, so
// every one costs a Decrypt call). Its cache must stay within MaxEntries and
// its heap within a bound proportional to MaxEntries, not to the flood;
// every wrapped key must cost exactly one KMS call; and Close must leave no
// goroutine behind. The flood runs on 8 goroutines, for MaxEntries 1,000
// and the default 10,000.
//
// The bound that matters is MaxEntries (keycache.ConsumerOptions, or
// record.DecryptorOptions.MaxEntries): a cached key takes about 1 KiB, so
// the default 10,000 holds about 10 MiB whatever the flood. The price of a
// flood is KMS calls, one per distinct wrapped key. Strict mode does not
// lower it: a consumer learns the KMS key of a wrapped key only from KMS.
// What bounds the calls is the Decrypt rate limit (DecryptRate and
// DecryptBurst), which this test lifts to count memory; TestRefusalFlood
// covers forged wrapped keys, which KMS refuses.
func TestConsumerFlood(t *testing.T) {
	n := floodKeys()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	b := keycache.Binding{Context: map[string]string{"kinesis:stream": "orders"}, AD: "kinesis:orders"}
	ctx := context.Background()
	wrapped := make([][]byte, n)
	for i := range wrapped {
		out, err := k.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &arn, KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: b.Context})
		require.NoError(t, err)
		wrapped[i] = out.CiphertextBlob
	}

	for _, maxEntries := range []int{1000, 10000 /* the default */} {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		goroutines := runtime.NumGoroutine()
		callsBefore := k.Calls("Decrypt")

		c := newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) { o.MaxEntries = maxEntries })
		s := startFloodSampler(c)
		const workers = 8
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		start := time.Now()
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					key, _, err := c.Key(ctx, wrapped[i], b)
					if err != nil {
						errs <- err
						return
					}
					if key == nil {
						errs <- context.Canceled
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		s.finish()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		st := c.Stats()
		calls := k.Calls("Decrypt") - callsBefore
		peak := int64(s.peakHeap.Load()) - int64(base.HeapAlloc)

		require.LessOrEqual(t, st.Entries, maxEntries, "entries after the flood")
		require.LessOrEqual(t, s.peakEnts.Load(), int64(maxEntries), "peak entries during the flood")
		require.EqualValues(t, n, calls, "one Decrypt per distinct wrapped key")
		require.EqualValues(t, n, st.KMSCalls)
		require.GreaterOrEqual(t, st.Evictions, uint64(n-maxEntries))
		// A generous bound: 8 KiB per entry (about 1 KiB is used), 32 MiB
		// for the garbage of evicted keys that the GC has not collected
		// yet, and the live heap at the start, since the GC lets the heap
		// grow to twice the live heap (GOGC=100) before it collects; the
		// live heap holds the flood's input, the wrapped keys. A leak
		// shows in the retained heap below, which is bounded tightly.
		bound := int64(maxEntries)*8<<10 + 32<<20 + int64(base.HeapAlloc)
		require.LessOrEqual(t, peak, bound, "peak heap growth")

		// What the full cache retains, once the garbage is collected.
		runtime.GC()
		var live runtime.MemStats
		runtime.ReadMemStats(&live)
		retained := int64(live.HeapAlloc) - int64(base.HeapAlloc)
		require.LessOrEqual(t, retained, int64(maxEntries)*4<<10+4<<20, "heap retained by a full cache")

		require.NoError(t, c.Close())
		require.Zero(t, c.Stats().Entries)
		floodGoroutinesBack(t, goroutines)
		t.Logf("flood of %d distinct wrapped keys, MaxEntries %d: %d KMS Decrypt calls, %d entries at the end (peak %d), %d evictions, live heap before %.1f MiB, peak +%.1f MiB (bound %.0f MiB), retained after GC +%.1f MiB (%d bytes per entry), %v",
			n, maxEntries, calls, st.Entries, s.peakEnts.Load(), st.Evictions, float64(base.HeapAlloc)/(1<<20), float64(peak)/(1<<20), float64(bound)/(1<<20),
			float64(retained)/(1<<20), retained/int64(max(st.Entries, 1)), elapsed.Round(time.Millisecond))
	}
}

// floodGoroutinesBack waits up to 5 s for the goroutine count to fall back to
// before.
func floodGoroutinesBack(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
