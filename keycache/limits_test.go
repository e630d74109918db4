package keycache_test

import (
	"context"
	"crypto/rand"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
)

// TestConsumerTrustsNoKeyByDefault: a consumer given neither AllowedKeyIDs
// nor InsecureAllowAnyKey unwraps nothing, and asks KMS nothing.
func TestConsumerTrustsNoKeyByDefault(t *testing.T) {
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	c := newConsumer(t, k)
	defer c.Close()
	key, _, err := c.Key(context.Background(), wrap(t, k, arn, b), b)
	require.ErrorIs(t, err, keycache.ErrNotAllowed)
	require.ErrorContains(t, err, "InsecureAllowAnyKey")
	require.Nil(t, key)
	require.Zero(t, k.Calls("Decrypt"))
	require.True(t, keycache.Permanent(err))
}

// TestRefusalFlood plays a writer with no KMS rights who puts 5,000 records
// with random wrapped keys on the stream. Each costs one Decrypt call, and
// a second pass none; the working key of the consumer is never evicted,
// even with MaxEntries 1; refusals stay within MaxFailures.
func TestRefusalFlood(t *testing.T) {
	ctx := context.Background()
	for _, maxFailures := range []int{1000, 10000 /* the default */} {
		k := kmsfake.New()
		arn := newKey(k)
		b := binding("orders")
		good := wrap(t, k, arn, b)
		c := newConsumer(t, k, func(o *keycache.ConsumerOptions) {
			o.AllowedKeyIDs = []string{arn}
			o.MaxEntries = 1
			o.MaxFailures = maxFailures
			o.DecryptRate = -1
		})
		first, _, err := c.Key(ctx, good, b)
		require.NoError(t, err)

		forged := make([][]byte, 5000)
		for i := range forged {
			forged[i] = make([]byte, 150)
			rand.Read(forged[i])
		}
		for pass := range 2 {
			before := k.Calls("Decrypt")
			for _, wk := range forged {
				_, _, err := c.Key(ctx, wk, b)
				require.Error(t, err)
				require.True(t, keycache.Permanent(err), "%v", err)
			}
			calls := k.Calls("Decrypt") - before
			key, _, err := c.Key(ctx, good, b)
			require.NoError(t, err)
			require.Same(t, first, key, "the working key stays")
			switch {
			case pass == 0:
				require.Equal(t, int64(5000), calls)
			case maxFailures >= len(forged):
				require.Zero(t, calls, "every refusal remembered")
			default:
				// FIFO: the oldest refusals were forgotten, and each of
				// them pushes out another, so the pass asks again.
				require.Equal(t, int64(5000), calls)
			}
		}
		st := c.Stats()
		require.Zero(t, st.Evictions)
		require.Equal(t, 1, st.Entries)
		require.Equal(t, min(maxFailures, len(forged)), st.Refusals)
		t.Logf("MaxFailures %d: %d Decrypt calls for 2 × 5,000 forged records, %d evictions, %d refusals held",
			maxFailures, k.Calls("Decrypt")-1, st.Evictions, st.Refusals)
		c.Close()
	}
}

// TestDecryptRateLimit: misses spend tokens of a bucket that refills at
// DecryptRate per second; with none left a miss fails at once with
// ErrRateLimited and makes no call. Hits and remembered refusals are free.
func TestDecryptRateLimit(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) {
		o.AllowedKeyIDs = []string{arn}
		o.DecryptRate = 10
		o.DecryptBurst = 5
		o.Now = clk.Now
	})
	defer c.Close()
	wks := make([][]byte, 8)
	for i := range wks {
		wks[i] = wrap(t, k, arn, b)
	}
	for _, wk := range wks[:5] {
		_, _, err := c.Key(ctx, wk, b)
		require.NoError(t, err)
	}
	_, _, err := c.Key(ctx, []byte("forged"), b)
	require.ErrorIs(t, err, keycache.ErrRateLimited)
	require.False(t, keycache.Permanent(err))
	require.Equal(t, int64(5), k.Calls("Decrypt"))
	for _, wk := range wks[:5] {
		_, _, err := c.Key(ctx, wk, b)
		require.NoError(t, err, "hits are free")
	}
	clk.Advance(100 * time.Millisecond) // one token
	_, _, err = c.Key(ctx, []byte("forged"), b)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext), "%v", err)
	_, _, err = c.Key(ctx, []byte("forged"), b)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext), "remembered refusals are free")
	_, _, err = c.Key(ctx, wks[5], b)
	require.ErrorIs(t, err, keycache.ErrRateLimited)
	clk.Advance(time.Hour) // refills to the burst, not beyond
	for _, wk := range wks[5:] {
		_, _, err := c.Key(ctx, wk, b)
		require.NoError(t, err)
	}
	require.Equal(t, int64(9), k.Calls("Decrypt"))
	require.Equal(t, uint64(2), c.Stats().RateLimited)
}

// TestConsumerCached: Cached reports working keys and refusals, and never
// calls KMS.
func TestConsumerCached(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{arn} })
	defer c.Close()
	wk := wrap(t, k, arn, b)
	_, _, _, ok := c.Cached(wk, b)
	require.False(t, ok)
	_, _, _, ok = c.Cached([]byte("forged"), b)
	require.False(t, ok)
	require.Zero(t, k.Calls("Decrypt"))

	want, _, err := c.Key(ctx, wk, b)
	require.NoError(t, err)
	_, _, err = c.Key(ctx, []byte("forged"), b)
	require.Error(t, err)
	key, keyARN, err, ok := c.Cached(wk, b)
	require.True(t, ok)
	require.NoError(t, err)
	require.Same(t, want, key)
	require.Equal(t, arn, keyARN)
	key, _, err, ok = c.Cached([]byte("forged"), b)
	require.True(t, ok)
	require.Nil(t, key)
	require.True(t, errors.Is(err, kmsiface.ErrInvalidCiphertext))
	var ke *kmsiface.Error
	require.ErrorAs(t, err, &ke)
	require.Equal(t, int64(2), k.Calls("Decrypt"))
}

// TestAllowedKeyRefusalsAreTransient: with one allowed key pinned as the
// KeyId, KMS refusing that key itself (disabled, pending deletion, denied)
// is no verdict on the record: not permanent, not remembered, and the
// records decrypt as soon as the key is usable again.
func TestAllowedKeyRefusalsAreTransient(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	arn := newKey(k)
	b := binding("orders")
	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{arn} })
	defer c.Close()
	for _, tc := range []struct {
		name       string
		break_, ok func() error
		class      error
	}{
		{"disabled", func() error { return k.SetKeyState(arn, kmstypes.KeyStateDisabled) }, func() error { return k.SetKeyState(arn, kmstypes.KeyStateEnabled) }, kmsiface.ErrKeyDisabled},
		{"pending deletion", func() error { return k.SetKeyState(arn, kmstypes.KeyStatePendingDeletion) }, func() error { return k.SetKeyState(arn, kmstypes.KeyStateEnabled) }, kmsiface.ErrKeyDisabled},
		{"denied", func() error { return k.DenyAccess(arn, "Decrypt") }, func() error { return k.AllowAccess(arn) }, kmsiface.ErrAccessDenied},
	} {
		wk := wrap(t, k, arn, b)
		require.NoError(t, tc.break_())
		_, _, err := c.Key(ctx, wk, b)
		require.ErrorIs(t, err, tc.class, tc.name)
		require.False(t, keycache.Permanent(err), "%s: %v", tc.name, err)
		require.ErrorContains(t, err, "the allowed key")
		require.Zero(t, c.Stats().Refusals, tc.name)
		require.NoError(t, tc.ok())
		_, _, err = c.Key(ctx, wk, b)
		require.NoError(t, err, tc.name)
	}
}

// TestEveryAllowedKeyPinned: with several allowed keys, each is named in
// turn as the KeyId of Decrypt, so KMS never uses a key a writer to the
// stream controls; replicas of one multi-Region key count once.
func TestEveryAllowedKeyPinned(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	k1, k2, other := newKey(k), newKey(k), newKey(k)
	b := binding("orders")
	var sent []string
	var mu sync.Mutex
	c := newConsumer(t, &keyIDRecorder{spyKMS: &spyKMS{KMS: k}, got: &sent, mu: &mu}, func(o *keycache.ConsumerOptions) {
		o.AllowedKeyIDs = []string{k1, k2, k1}
	})
	defer c.Close()
	_, arn, err := c.Key(ctx, wrap(t, k, k2, b), b)
	require.NoError(t, err)
	require.Equal(t, k2, arn)
	_, _, err = c.Key(ctx, wrap(t, k, other, b), b)
	require.ErrorIs(t, err, keycache.ErrNotAllowed)
	require.True(t, keycache.Permanent(err))
	require.Equal(t, []string{k1, k2, k1, k2}, sent, "k1 is listed twice but asked once")
}

// TestRefusalMemory: a refusal through the real SDK client keeps neither
// the forged wrapped key nor the SDK's request: 2,000 refusals of
// 6,144-byte wrapped keys hold well under 1 KiB each.
func TestRefusalMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes memory figures")
	}
	k := kmsfake.New()
	arn := newKey(k)
	srv := kmsfake.NewServer(k)
	defer srv.Close()
	b := binding("orders")
	c := newConsumer(t, srv.Client(), func(o *keycache.ConsumerOptions) {
		o.AllowedKeyIDs = []string{arn}
		o.DecryptRate = -1
	})
	defer c.Close()
	ctx := context.Background()
	const n = 2000
	forged := make([][]byte, n)
	for i := range forged {
		forged[i] = make([]byte, 6144)
		rand.Read(forged[i])
	}
	_, _, _ = c.Key(ctx, forged[0], b) // warm the client
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for _, wk := range forged[1:] {
		_, _, err := c.Key(ctx, wk, b)
		require.True(t, keycache.Permanent(err), "%v", err)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	per := float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / (n - 1)
	t.Logf("%d refusals of 6,144-byte wrapped keys through *kms.Client: %.0f bytes each", c.Stats().Refusals, per)
	require.Equal(t, n, c.Stats().Refusals)
	require.Less(t, per, 1024.0)
	runtime.KeepAlive(forged)
}
