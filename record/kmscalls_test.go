package record_test

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

// fakeClock is a clock that tests advance by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestKMSCallsPerHour runs three producers of 64 goroutines each for a
// simulated hour with the default TTL, then one consumer over all their
// records, and counts KMS calls: about one GenerateDataKey per TTL per
// producer (refresh-ahead included), and exactly one Decrypt per distinct
// wrapped key.
func TestKMSCallsPerHour(t *testing.T) {
	const (
		producers  = 3
		goroutines = 64
		step       = 15 * time.Second // simulated time between records of a goroutine
		hour       = time.Hour
	)
	ctx := context.Background()
	clock := newFakeClock()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)

	encs := make([]*record.Encryptor, producers)
	for i := range encs {
		var err error
		encs[i], err = record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) { o.Now = clock.Now })
		require.NoError(t, err)
		defer encs[i].Close()
	}
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn}; o.Now = clock.Now })
	require.NoError(t, err)
	defer dec.Close()

	var (
		mu      sync.Mutex
		batch   [][]byte
		wrapped = map[string]bool{}
	)
	for elapsed := time.Duration(0); elapsed < hour; elapsed += step {
		var wg sync.WaitGroup
		for p, enc := range encs {
			for g := range goroutines {
				wg.Go(func() {
					r, err := enc.Encrypt(ctx, "orders", fmt.Sprintf("p%d-g%d", p, g), []byte("payload"))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					batch = append(batch, r.Data)
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		// Let background refreshes started in this step land before the
		// clock moves: the in-process KMS answers at once.
		waitForRefreshes(t, encs)
		// The consumer keeps up with the producers.
		for _, d := range batch {
			wrapped[wrappedKeyOf(t, d)] = true
			_, err := dec.Decrypt(ctx, "orders", d)
			require.NoError(t, err)
		}
		batch = batch[:0]
		clock.Advance(step)
	}

	generate := k.Calls("GenerateDataKey")
	t.Logf("GenerateDataKey: %d for %d producers over a simulated hour (%.1f per producer); Decrypt: %d for %d distinct wrapped keys",
		generate, producers, float64(generate)/producers, k.Calls("Decrypt"), len(wrapped))
	for _, enc := range encs {
		require.LessOrEqual(t, enc.Stats().KMSCalls, uint64(14), "GenerateDataKey calls per producer per hour")
		require.GreaterOrEqual(t, enc.Stats().KMSCalls, uint64(12), "a data key lives at most one TTL")
	}
	require.Equal(t, int64(len(wrapped)), k.Calls("Decrypt"), "exactly one Decrypt per distinct wrapped key")
	require.Equal(t, uint64(len(wrapped)), dec.Stats().KMSCalls)
}

// waitForRefreshes waits until no producer has a KMS call in flight.
func waitForRefreshes(t *testing.T, encs []*record.Encryptor) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		settled := true
		for _, e := range encs {
			st := e.Stats()
			if st.KMSCalls != st.Refreshes+uint64(sumFailures(st.Failures)) {
				settled = false
			}
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("background refresh did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

func sumFailures(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

// wrappedKeyOf returns the wrapped key of an envelope, as a map key.
func wrappedKeyOf(t *testing.T, data []byte) string {
	t.Helper()
	e, _, err := envelope.Parse(data)
	require.NoError(t, err)
	return string(e.WrappedKey)
}

// TestKMSCallsFleet checks the fleet cost model of BENCHMARKS.md on a
// simulated hour: P producer processes (one shared Encryptor each) and C
// consumer processes that each read every record make
//
//	GenerateDataKey: P × 3600 s / TTL to P × 3600 s / (TTL − RefreshAhead)
//	Decrypt:         C × GenerateDataKey (each consumer unwraps each key once)
//
// calls an hour: 12 to 13 per producer and consumer with the 5-minute TTL
// (12·P·(1 + C)), and a third of that with 15 minutes.
func TestKMSCallsFleet(t *testing.T) {
	const (
		producers = 20
		consumers = 4
		step      = 30 * time.Second
	)
	for _, ttl := range []time.Duration{5 * time.Minute, 15 * time.Minute} {
		t.Run(ttl.String(), func(t *testing.T) {
			ctx := context.Background()
			clock := newFakeClock()
			k := kmsfake.New()
			_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
			encs := make([]*record.Encryptor, producers)
			for i := range encs {
				var err error
				encs[i], err = record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) { o.Now = clock.Now; o.TTL = ttl })
				require.NoError(t, err)
				defer encs[i].Close()
			}
			decs := make([]*record.Decryptor, consumers)
			for i := range decs {
				var err error
				decs[i], err = record.NewDecryptor(k, func(o *record.DecryptorOptions) {
					o.AllowedKeys = []string{arn}
					o.Now = clock.Now
					o.TTL = ttl
				})
				require.NoError(t, err)
				defer decs[i].Close()
			}
			for elapsed := time.Duration(0); elapsed < time.Hour; elapsed += step {
				var batch [][]byte
				for p, enc := range encs {
					r, err := enc.Encrypt(ctx, "orders", fmt.Sprintf("p%d", p), []byte("payload"))
					require.NoError(t, err)
					batch = append(batch, r.Data)
				}
				waitForRefreshes(t, encs)
				for _, dec := range decs {
					_, err := dec.DecryptBatch(ctx, "orders", batch)
					require.NoError(t, err)
				}
				clock.Advance(step)
			}
			gdk, dec := k.Calls("GenerateDataKey"), k.Calls("Decrypt")
			lo := float64(producers) * time.Hour.Seconds() / ttl.Seconds()
			hi := float64(producers) * math.Ceil(time.Hour.Seconds()/(ttl-ttl/20).Seconds())
			t.Logf("TTL %v: %d producers × %d consumers: GenerateDataKey %d (model %.0f to %.0f), Decrypt %d, %.1f calls per producer per hour in all",
				ttl, producers, consumers, gdk, lo, hi, dec, float64(gdk+dec)/producers)
			require.GreaterOrEqual(t, float64(gdk), lo)
			require.LessOrEqual(t, float64(gdk), hi)
			require.Equal(t, int64(consumers)*gdk, dec, "each consumer unwraps each data key once")
		})
	}
}
