package keycache_test

import (
	"context"
	"runtime"
	"sync"
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
)

// This file holds the helpers shared by the producer and consumer tests, and
// the tests of what both caches have in common: Stats, Close.

// clock is a fake clock that tests advance by hand. Background goroutines
// of a cache read it concurrently, so it is atomic.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// spyKMS wraps a kmsfake.KMS and counts the KMS calls that reach it, those in
// flight, and those made after the test marked the cache closed.
type spyKMS struct {
	*kmsfake.KMS
	inFlight    atomic.Int64
	closed      atomic.Bool  // set by the test once Close has returned
	afterClose  atomic.Int64 // calls started while closed was set
	beforeCall  func(op string)
	beforeCallM sync.Mutex
}

func (s *spyKMS) enter(op string) func() {
	if s.closed.Load() {
		s.afterClose.Add(1)
	}
	s.beforeCallM.Lock()
	fn := s.beforeCall
	s.beforeCallM.Unlock()
	if fn != nil {
		fn(op)
	}
	s.inFlight.Add(1)
	return func() { s.inFlight.Add(-1) }
}

func (s *spyKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	defer s.enter("GenerateDataKey")()
	return s.KMS.GenerateDataKey(ctx, in, optFns...)
}

func (s *spyKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	defer s.enter("Decrypt")()
	return s.KMS.Decrypt(ctx, in, optFns...)
}

var _ kmsiface.Client = (*spyKMS)(nil)

// binding returns the Binding that package record uses for a Kinesis stream.
func binding(stream string) keycache.Binding {
	return keycache.Binding{Context: map[string]string{"kinesis:stream": stream}, AD: "kinesis:" + stream}
}

// newKey creates a symmetric key in k and returns its ARN.
func newKey(k *kmsfake.KMS) string {
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	return arn
}

// wrap returns a wrapped data key for b, made by k under arn, as a producer
// would put it in an envelope.
func wrap(t testing.TB, k *kmsfake.KMS, arn string, b keycache.Binding) []byte {
	t.Helper()
	out, err := k.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{
		KeyId: &arn, KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: b.Context,
	})
	require.NoError(t, err)
	return out.CiphertextBlob
}

// waitFor polls cond every millisecond for up to 5 s, for background work
// whose end the test cannot otherwise observe.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// settled reports whether a cache has no KMS call in flight, from its
// counters: every call ended in a success or a failure. For a producer,
// Refreshes counts every successful GenerateDataKey.
func settled(st keycache.Stats) bool {
	var failed uint64
	for _, n := range st.Failures {
		failed += n
	}
	return st.KMSCalls == st.Refreshes+failed
}

// sealOpen checks that a producer's key and a consumer's key are the same
// data key: what one seals, the other opens.
func sealOpen(t testing.TB, sealer, opener *envelope.Key) {
	t.Helper()
	env, err := sealer.Seal(nil, []byte("pk"), []byte("payload"))
	require.NoError(t, err)
	e, _, err := envelope.Parse(env)
	require.NoError(t, err)
	out, n, err := opener.Open(nil, &e)
	require.NoError(t, err)
	require.Equal(t, "pk", string(out[:n]))
	require.Equal(t, "payload", string(out[n:]))
}

// goroutinesBack waits (briefly) until the number of goroutines is back to
// at most before, and fails the test if it is not.
func goroutinesBack(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFailureClasses makes both caches fail once for every class of KMS
// failure, and checks that each failure is returned with its class and
// counted under the name Stats documents.
func TestFailureClasses(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	b := binding("orders")

	disabled, pending, denied, deleted := newKey(k), newKey(k), newKey(k), newKey(k)
	require.NoError(t, k.SetKeyState(disabled, kmstypes.KeyStateDisabled))
	require.NoError(t, k.SetKeyState(pending, kmstypes.KeyStatePendingDeletion))
	require.NoError(t, k.DenyAccess(denied))
	require.NoError(t, k.DeleteKey(deleted))
	_, asymmetric := k.CreateKey(kmstypes.KeySpecRsa2048)
	throttled := newKey(k)

	p := newProducer(t, k)
	defer p.Close()
	for _, tc := range []struct {
		keyID string
		class error
	}{
		{disabled, kmsiface.ErrKeyDisabled},
		{pending, kmsiface.ErrKeyDisabled},
		{denied, kmsiface.ErrAccessDenied},
		{deleted, kmsiface.ErrKeyNotFound},
		{"alias/does-not-exist", kmsiface.ErrKeyNotFound},
		{asymmetric, kmsiface.ErrInvalidKey},
	} {
		key, err := p.Key(ctx, tc.keyID, b, 1)
		require.ErrorIs(t, err, tc.class, tc.keyID)
		require.Nil(t, key, "no key without KMS: fail closed")
		var ke *kmsiface.Error
		require.ErrorAs(t, err, &ke)
		require.Equal(t, "GenerateDataKey", ke.Op)
	}
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, err := p.Key(ctx, throttled, b, 1)
	require.ErrorIs(t, err, kmsiface.ErrThrottling)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 500}, 1)
	_, err = p.Key(ctx, throttled, b, 1)
	require.Error(t, err)
	require.Nil(t, kmsiface.ClassOf(err), "a 500 fits no class")

	st := p.Stats()
	require.Equal(t, map[string]uint64{
		"KeyDisabled": 1, "InvalidKeyState": 1, "AccessDenied": 1, "KeyNotFound": 2,
		"InvalidKey": 1, "Throttling": 1, "Other": 1,
	}, st.Failures)
	require.Equal(t, uint64(8), st.KMSCalls)
	require.Equal(t, uint64(8), st.Misses)
	require.Zero(t, st.Hits)
	require.Zero(t, st.Entries)

	// The consumer: a key that is fine when the record is produced, then
	// disabled, denied, scheduled for deletion or deleted.
	wrapped := map[string][]byte{}
	good := newKey(k)
	for _, name := range []string{"disabled", "pending", "denied", "deleted", "throttled"} {
		wrapped[name] = wrap(t, k, good, b)
	}
	c := newConsumer(t, k, loose)
	defer c.Close()
	try := func(name string, class error, failures map[string]uint64) {
		t.Helper()
		key, _, err := c.Key(ctx, wrapped[name], b)
		require.ErrorIs(t, err, class, name)
		require.Nil(t, key)
		var ke *kmsiface.Error
		require.ErrorAs(t, err, &ke)
		require.Equal(t, "Decrypt", ke.Op)
		require.Equal(t, failures, c.Stats().Failures)
	}
	require.NoError(t, k.SetKeyState(good, kmstypes.KeyStateDisabled))
	try("disabled", kmsiface.ErrKeyDisabled, map[string]uint64{"KeyDisabled": 1})
	require.NoError(t, k.SetKeyState(good, kmstypes.KeyStatePendingDeletion))
	try("pending", kmsiface.ErrKeyDisabled, map[string]uint64{"KeyDisabled": 1, "InvalidKeyState": 1})
	require.NoError(t, k.SetKeyState(good, kmstypes.KeyStateEnabled))
	require.NoError(t, k.DenyAccess(good, "Decrypt"))
	try("denied", kmsiface.ErrAccessDenied, map[string]uint64{"KeyDisabled": 1, "InvalidKeyState": 1, "AccessDenied": 1})
	require.NoError(t, k.AllowAccess(good))
	k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	try("throttled", kmsiface.ErrThrottling, map[string]uint64{"KeyDisabled": 1, "InvalidKeyState": 1, "AccessDenied": 1, "Throttling": 1})
	require.NoError(t, k.DeleteKey(good))
	try("deleted", kmsiface.ErrKeyNotFound, map[string]uint64{"KeyDisabled": 1, "InvalidKeyState": 1, "AccessDenied": 1, "Throttling": 1, "KeyNotFound": 1})

	// The refusals are remembered for NegativeTTL, so a forged record
	// costs one call, whatever its answer; throttling is not.
	require.Zero(t, c.Stats().Entries)
	require.Equal(t, 4, c.Stats().Refusals)
	require.Equal(t, uint64(5), c.Stats().KMSCalls)
	_, _, err = c.Key(ctx, wrapped["disabled"], b)
	require.ErrorIs(t, err, kmsiface.ErrKeyDisabled, "remembered")
	require.Equal(t, uint64(5), c.Stats().KMSCalls)
	_, _, err = c.Key(ctx, wrapped["throttled"], b)
	require.ErrorIs(t, err, kmsiface.ErrKeyNotFound, "asked again")
	require.Equal(t, uint64(6), c.Stats().KMSCalls)
}

// TestProducerClose closes a producer while a background refresh is in
// flight: Close waits for it, destroys the cached key, leaves no goroutine
// running, and Key fails with ErrClosed afterwards.
func TestProducerClose(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	clk := newClock()
	k := &spyKMS{KMS: kmsfake.New()}
	arn := newKey(k.KMS)
	p := newProducer(t, k, func(o *keycache.ProducerOptions) { o.Now = clk.Now })
	b := binding("orders")
	key, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)

	k.SetLatency(time.Hour) // the refresh never ends by itself
	clk.Advance(keycache.DefaultTTL - keycache.DefaultTTL/20)
	same, err := p.Key(ctx, arn, b, 1)
	require.NoError(t, err)
	require.Same(t, key, same)
	waitFor(t, "the background refresh to start", func() bool { return k.inFlight.Load() == 1 })

	require.NoError(t, p.Close())
	k.closed.Store(true)
	require.Zero(t, k.inFlight.Load(), "Close returned before the KMS call in flight ended")
	_, err = key.Seal(nil, []byte("pk"), []byte("x"))
	require.ErrorIs(t, err, envelope.ErrKeyDestroyed, "Close destroys the cached key")

	for range 3 {
		key, err := p.Key(ctx, arn, b, 1)
		require.ErrorIs(t, err, keycache.ErrClosed)
		require.Nil(t, key)
	}
	require.NoError(t, p.Close(), "Close twice")
	require.Zero(t, k.afterClose.Load(), "KMS called after Close")
	goroutinesBack(t, before)
}

// TestConsumerClose closes a consumer while a Decrypt is in flight, with a
// caller waiting for it.
func TestConsumerClose(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx := context.Background()
	k := &spyKMS{KMS: kmsfake.New()}
	arn := newKey(k.KMS)
	b := binding("orders")
	wk1, wk2 := wrap(t, k.KMS, arn, b), wrap(t, k.KMS, arn, b)
	c := newConsumer(t, k, loose)
	key1, _, err := c.Key(ctx, wk1, b)
	require.NoError(t, err)
	env, err := key1.Seal(nil, []byte("pk"), []byte("x"))
	require.NoError(t, err)
	e, _, err := envelope.Parse(env)
	require.NoError(t, err)

	k.SetLatency(time.Hour)
	waiter := make(chan error, 1)
	go func() {
		_, _, err := c.Key(ctx, wk2, b)
		waiter <- err
	}()
	waitFor(t, "the Decrypt call to start", func() bool { return k.inFlight.Load() == 1 })

	require.NoError(t, c.Close())
	k.closed.Store(true)
	require.Zero(t, k.inFlight.Load(), "Close returned before the KMS call in flight ended")
	require.ErrorIs(t, <-waiter, keycache.ErrClosed, "a caller waiting for a call that Close ended")
	_, _, err = key1.Open(nil, &e)
	require.ErrorIs(t, err, envelope.ErrKeyDestroyed, "Close destroys the cached keys")
	require.Zero(t, c.Stats().Entries)

	for _, wk := range [][]byte{wk1, wk2} {
		key, _, err := c.Key(ctx, wk, b)
		require.ErrorIs(t, err, keycache.ErrClosed)
		require.Nil(t, key)
	}
	require.NoError(t, c.Close(), "Close twice")
	require.Zero(t, k.afterClose.Load(), "KMS called after Close")
	goroutinesBack(t, before)
}

// TestCloseRacesKey closes a cache between the moment Key checks that it is
// open and the moment it starts a KMS call (the clock, which Key reads in
// between, is the hook). No KMS call may start after Close has returned, and
// Key must fail with ErrClosed.
func TestCloseRacesKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	b := binding("orders")

	t.Run("Producer", func(t *testing.T) {
		k := &spyKMS{KMS: kmsfake.New()}
		arn := newKey(k.KMS)
		var p *keycache.Producer
		var armed atomic.Bool
		p = newProducer(t, k, func(o *keycache.ProducerOptions) {
			o.Now = func() time.Time {
				if armed.CompareAndSwap(true, false) {
					require.NoError(t, p.Close())
					k.closed.Store(true)
				}
				return clk.Now()
			}
		})
		armed.Store(true)
		key, err := p.Key(ctx, arn, b, 1)
		require.ErrorIs(t, err, keycache.ErrClosed)
		require.Nil(t, key)
		require.Zero(t, k.afterClose.Load(), "GenerateDataKey called after Close returned")
	})
	t.Run("Consumer", func(t *testing.T) {
		k := &spyKMS{KMS: kmsfake.New()}
		wk := wrap(t, k.KMS, newKey(k.KMS), b)
		var c *keycache.Consumer
		var armed atomic.Bool
		c = newConsumer(t, k, loose, func(o *keycache.ConsumerOptions) {
			o.Now = func() time.Time {
				if armed.CompareAndSwap(true, false) {
					require.NoError(t, c.Close())
					k.closed.Store(true)
				}
				return clk.Now()
			}
		})
		armed.Store(true)
		key, _, err := c.Key(ctx, wk, b)
		require.ErrorIs(t, err, keycache.ErrClosed)
		require.Nil(t, key)
		require.Zero(t, k.afterClose.Load(), "Decrypt called after Close returned")
	})
}

// nilKMS returns neither an output nor an error, as a broken kmsiface.Client
// might.
type nilKMS struct{ kmsiface.Client }

func (nilKMS) GenerateDataKey(context.Context, *kms.GenerateDataKeyInput, ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	return nil, nil
}

func (nilKMS) Decrypt(context.Context, *kms.DecryptInput, ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return nil, nil
}

// TestNilOutputFromClient: a client that returns (nil, nil) gives a KMS
// error of class Other, not a panic in a background goroutine.
func TestNilOutputFromClient(t *testing.T) {
	ctx := context.Background()
	p := newProducer(t, nilKMS{})
	defer p.Close()
	_, err := p.Key(ctx, "alias/x", binding("orders"), 1)
	var ke *kmsiface.Error
	require.ErrorAs(t, err, &ke)
	require.ErrorContains(t, err, "no output and no error")

	c := newConsumer(t, nilKMS{}, loose)
	defer c.Close()
	_, _, err = c.Key(ctx, []byte("wrapped"), binding("orders"))
	require.ErrorAs(t, err, &ke)
	require.ErrorContains(t, err, "no output and no error")
}

// newProducer is keycache.NewProducer for options that must be valid.
func newProducer(t testing.TB, client kmsiface.DataKeyGenerator, optFns ...func(*keycache.ProducerOptions)) *keycache.Producer {
	t.Helper()
	p, err := keycache.NewProducer(client, optFns...)
	require.NoError(t, err)
	return p
}

// newConsumer is keycache.NewConsumer for options that must be valid.
func newConsumer(t testing.TB, client kmsiface.Decrypter, optFns ...func(*keycache.ConsumerOptions)) *keycache.Consumer {
	t.Helper()
	c, err := keycache.NewConsumer(client, optFns...)
	require.NoError(t, err)
	return c
}
