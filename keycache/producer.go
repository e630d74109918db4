package keycache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmsiface"
)

// ErrClosed is returned by a cache after Close.
var ErrClosed = errors.New("keycache: closed")

// Binding is what a data key is bound to: the identity of one stream.
type Binding struct {
	// Context is the KMS encryption context of the data key. It must not
	// change after the Binding is first used.
	Context map[string]string
	// AD is the envelope associated data (see envelope.NewKey). It must
	// determine Context: two Bindings with the same AD must have equal
	// Contexts.
	AD string
}

// Producer caches one data key per (KMS key, Binding) for the producing side.
// It is safe for concurrent use; see the package documentation.
type Producer struct {
	client kmsiface.DataKeyGenerator
	opts   ProducerOptions

	mu    sync.Mutex                        // serialises writes of slots
	slots atomic.Pointer[map[slotKey]*slot] // copy on write

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	lifeMu sync.Mutex // orders starting KMS calls (wg.Add) before Close's wg.Wait
	c      counters
}

type slotKey struct{ keyID, ad string }

// slot is the cache of one (KMS key, Binding).
type slot struct {
	keyID string
	b     Binding
	cur   atomic.Pointer[dataKey]

	refreshing atomic.Bool  // a background refresh is in flight
	retryAt    atomic.Int64 // no background refresh before, in UnixNano

	mu      sync.Mutex
	call    *call // the GenerateDataKey in flight, if any
	removed bool  // dropped from the map by dropExpired: start no call
}

// errSlotRemoved is the error of start for a slot that dropExpired removed
// after the caller looked it up: the caller looks the slot up again.
var errSlotRemoved = errors.New("keycache: slot removed")

// dataKey is one data key in use by a producer.
type dataKey struct {
	key       *envelope.Key
	keyARN    string
	refreshAt time.Time
	expires   time.Time
	records   stripedCounter // when MaxRecordsPerKey ≥ minStripedLimit
	exact     atomic.Uint64  // records, when MaxRecordsPerKey is smaller
	bytes     atomic.Uint64  // when MaxBytesPerKey is set
	exhausted atomic.Bool
}

// minStripedLimit is the smallest MaxRecordsPerKey counted in stripes;
// smaller limits are counted exactly, on one shared counter.
const minStripedLimit = 1 << 20

type call struct {
	done chan struct{}
	dk   *dataKey
	err  error
}

// NewProducer returns a producer cache that calls client.GenerateDataKey.
// It fails for a nil client or an option out of range.
func NewProducer(client kmsiface.DataKeyGenerator, optFns ...func(*ProducerOptions)) (*Producer, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil KMS client", errOptions)
	}
	var o ProducerOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{client: client, opts: o, ctx: ctx, cancel: cancel}
	m := make(map[slotKey]*slot)
	p.slots.Store(&m)
	return p, nil
}

// Key returns the data key to seal one record of n payload bytes for the KMS
// key keyID (key ID, key ARN, alias name or alias ARN) and binding b.
//
// Once the cache is warm, Key returns without waiting on KMS. Otherwise it
// waits for one GenerateDataKey call, or until ctx is done. The call is
// shared with every goroutine waiting for the same key. A key is missing
// on first use, after its TTL, and once MaxRecordsPerKey or MaxBytesPerKey
// retires it.
//
// A failed KMS call is returned as a *kmsiface.Error. No key is returned
// when none can be had: callers fail closed.
//
// Key fails if n exceeds MaxBytesPerKey: no data key may seal such a
// record. Package record checks the size first and returns
// record.ErrRecordTooLarge.
func (p *Producer) Key(ctx context.Context, keyID string, b Binding, n int) (*envelope.Key, error) {
	// Checked first: counted against the current key, an oversized record
	// would retire it, and the loop below would never end.
	if p.opts.MaxBytesPerKey > 0 && uint64(n) > p.opts.MaxBytesPerKey {
		return nil, fmt.Errorf("keycache: record of %d bytes, more than MaxBytesPerKey %d", n, p.opts.MaxBytesPerKey)
	}
	if p.closed.Load() {
		return nil, ErrClosed
	}
	s := p.slot(keyID, b)
	now := p.opts.Now()
	if dk := s.cur.Load(); dk != nil && dk.use(now, n, &p.opts) {
		p.c.hits.add(1)
		if !now.Before(dk.refreshAt) {
			p.refreshAhead(s, now)
		}
		return dk.key, nil
	}
	p.c.misses.Add(1)
	for {
		c := p.start(s, now)
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err == errSlotRemoved {
			s = p.slot(keyID, b)
			continue
		}
		if c.err != nil {
			return nil, c.err
		}
		now = p.opts.Now()
		if c.dk.use(now, n, &p.opts) {
			return c.dk.key, nil
		}
		// Used up by other goroutines already, or expired on arrival:
		// fetch another. Every new key serves at least one record (none is
		// larger than MaxBytesPerKey), so this makes no more KMS calls than
		// there are records, and ends with ctx.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// use counts one record of n bytes against dk and reports whether dk may
// seal it.
func (dk *dataKey) use(now time.Time, n int, o *ProducerOptions) bool {
	if dk.exhausted.Load() || !now.Before(dk.expires) {
		return false
	}
	var over bool
	if o.MaxRecordsPerKey >= minStripedLimit {
		// Each stripe gets its share: the key retires when any share is
		// used up, slightly early and never late, with no shared counter.
		over = dk.records.add(1) > o.MaxRecordsPerKey/stripes
	} else {
		over = dk.exact.Add(1) > o.MaxRecordsPerKey
	}
	if !over && o.MaxBytesPerKey > 0 {
		over = dk.bytes.Add(uint64(n)) > o.MaxBytesPerKey
	}
	if over {
		dk.exhausted.Store(true)
	}
	return !over
}

func (p *Producer) slot(keyID string, b Binding) *slot {
	if s, ok := (*p.slots.Load())[slotKey{keyID, b.AD}]; ok {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.slots.Load()
	if s, ok := old[slotKey{keyID, b.AD}]; ok {
		return s
	}
	m := make(map[slotKey]*slot, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	s := &slot{keyID: keyID, b: b}
	m[slotKey{keyID, b.AD}] = s
	p.slots.Store(&m)
	return s
}

// refreshAhead starts a background refresh of s unless one is in flight or
// the last one failed less than RefreshRetry ago.
func (p *Producer) refreshAhead(s *slot, now time.Time) {
	if p.opts.RefreshAhead < 0 || s.refreshing.Load() || now.UnixNano() < s.retryAt.Load() {
		return
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	p.start(s, now)
}

// start returns the GenerateDataKey call in flight for s, starting one if
// there is none and s has no usable key.
func (p *Producer) start(s *slot, now time.Time) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.call != nil {
		return s.call
	}
	c := &call{done: make(chan struct{})}
	if s.removed {
		s.refreshing.Store(false)
		c.err = errSlotRemoved
		close(c.done)
		return c
	}
	if dk := s.cur.Load(); dk != nil && !dk.exhausted.Load() && now.Before(dk.refreshAt) {
		// Another goroutine replaced the key meanwhile.
		s.refreshing.Store(false)
		c.dk = dk
		close(c.done)
		return c
	}
	p.lifeMu.Lock()
	if p.closed.Load() {
		p.lifeMu.Unlock()
		s.refreshing.Store(false)
		c.err = ErrClosed
		close(c.done)
		return c
	}
	p.wg.Add(1)
	p.lifeMu.Unlock()
	s.call = c
	p.c.calls.Add(1) // counted here, so a call started is never missing from Stats
	go p.fetch(s, c)
	return c
}

// fetch makes the GenerateDataKey call c for s.
func (p *Producer) fetch(s *slot, c *call) {
	defer p.wg.Done()
	dk, err := p.generate(s)
	now := p.opts.Now()
	s.mu.Lock()
	if err == nil {
		// The key replaced is dropped, not destroyed: goroutines may still
		// be sealing with it. Its material is cleared once collected.
		s.cur.Store(dk)
		p.c.refreshes.Add(1)
	} else {
		s.retryAt.Store(now.Add(p.opts.RefreshRetry).UnixNano())
	}
	c.dk, c.err = dk, err
	s.call = nil
	s.refreshing.Store(false)
	s.mu.Unlock()
	close(c.done)
	if err == nil {
		p.dropExpired(now)
	}
}

// dropExpired drops the expired keys of every slot, so that the keys of
// streams no longer written are collected (and cleared) instead of held
// until Close, and then the slots left with no key and no KMS call, so that
// a producer that writes to ever new streams (or switches keys) does not
// grow. It runs after each successful KMS call, about once per TTL.
func (p *Producer) dropExpired(now time.Time) {
	idle := 0
	for _, s := range *p.slots.Load() {
		if dk := s.cur.Load(); dk != nil && !now.Before(dk.expires) {
			s.cur.CompareAndSwap(dk, nil)
		}
		if s.cur.Load() == nil {
			idle++
		}
	}
	if idle == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.slots.Load()
	m := make(map[slotKey]*slot, len(old))
	for k, s := range old {
		s.mu.Lock()
		keep := s.cur.Load() != nil || s.call != nil
		s.removed = !keep // a caller that looked it up before will look again
		s.mu.Unlock()
		if keep {
			m[k] = s
		}
	}
	p.slots.Store(&m)
}

func (p *Producer) generate(s *slot) (*dataKey, error) {
	start := time.Now()
	dk, err := p.generateKey(s)
	if p.opts.OnKMSCall != nil {
		p.opts.OnKMSCall("GenerateDataKey", time.Since(start), failureClass(err))
	}
	return dk, err
}

func (p *Producer) generateKey(s *slot) (*dataKey, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.CallTimeout)
	defer cancel()
	out, err := p.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             &s.keyID,
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: s.b.Context,
	}, p.opts.KMSOptions...)
	if err != nil {
		if p.closed.Load() {
			err = ErrClosed
		}
		err = kmsiface.Classify("GenerateDataKey", err)
		p.c.fail(err)
		return nil, err
	}
	if out == nil {
		err = kmsiface.Classify("GenerateDataKey", errors.New("no output and no error from the KMS client"))
		p.c.fail(err)
		return nil, err
	}
	defer clear(out.Plaintext)
	key, err := envelope.NewKey(out.Plaintext, out.CiphertextBlob, []byte(s.b.AD))
	if err != nil {
		err = kmsiface.Classify("GenerateDataKey", fmt.Errorf("unusable data key: %w", err))
		p.c.fail(err)
		return nil, err
	}
	now := p.opts.Now()
	dk := &dataKey{key: key, expires: now.Add(p.opts.TTL)}
	if out.KeyId != nil {
		dk.keyARN = *out.KeyId
	}
	dk.refreshAt = dk.expires
	if p.opts.RefreshAhead > 0 {
		dk.refreshAt = dk.expires.Add(-p.opts.RefreshAhead)
	}
	return dk, nil
}

// Stats returns the counters of p.
func (p *Producer) Stats() Stats {
	st := p.c.stats()
	for _, s := range *p.slots.Load() {
		if dk := s.cur.Load(); dk != nil && p.opts.Now().Before(dk.expires) {
			st.Entries++
		}
	}
	return st
}

// Close stops background refreshes, waits for KMS calls in flight, and
// destroys every cached key: Key returns ErrClosed afterwards, and a Seal
// with a key obtained before fails with envelope.ErrKeyDestroyed.
func (p *Producer) Close() error {
	p.lifeMu.Lock()
	if p.closed.Swap(true) {
		p.lifeMu.Unlock()
		return nil
	}
	p.lifeMu.Unlock()
	p.cancel()
	p.wg.Wait()
	for _, s := range *p.slots.Load() {
		if dk := s.cur.Swap(nil); dk != nil {
			dk.key.Destroy()
		}
	}
	return nil
}
