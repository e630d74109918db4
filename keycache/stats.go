package keycache

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/aws/smithy-go"

	"github.com/ksse-go/ksse/kmsiface"
)

// Stats are the counters of a cache. Every field counts since construction.
type Stats struct {
	Hits     uint64 // lookups served from the cache (keys and remembered refusals)
	Misses   uint64 // lookups that needed a KMS call (coalesced or not)
	KMSCalls uint64 // GenerateDataKey or Decrypt calls made
	// Failures counts failed KMS calls by class: "AccessDenied",
	// "KeyDisabled", "InvalidKeyState", "KeyNotFound", "Throttling",
	// "OptInRequired", "InvalidKey", "InvalidCiphertext", "NotAllowed"
	// (consumer strict mode) and "Other".
	Failures  map[string]uint64
	Refreshes uint64 // GenerateDataKey calls that succeeded, first fetches included (producer)
	Evictions uint64 // keys evicted before expiry to respect MaxEntries (consumer)
	Entries   int    // keys held now
	// RateLimited counts consumer misses refused by the Decrypt rate limit.
	RateLimited uint64
	// Refusals is the number of permanent KMS refusals a consumer
	// remembers now (see ConsumerOptions.NegativeTTL).
	Refusals int
}

// ErrNotAllowed is returned by a consumer for a wrapped key of a KMS key
// that is not in [ConsumerOptions].AllowedKeyIDs.
var ErrNotAllowed = errors.New("keycache: KMS key not in the allowed list")

// failureClass names the failure err as Stats.Failures counts it, or ""
// for nil. The names follow kmsiface's classes, split a little finer for
// the counters: a key disabled and a key in another unusable state are one
// class there, two names here, as in Kinesis.
func failureClass(err error) string {
	if err == nil {
		return ""
	}
	switch c := kmsiface.ClassOf(err); {
	case c == kmsiface.ErrAccessDenied:
		return "AccessDenied"
	case c == kmsiface.ErrKeyDisabled && apiCode(err, "KMSInvalidStateException"):
		return "InvalidKeyState"
	case c == kmsiface.ErrKeyDisabled:
		return "KeyDisabled"
	case c == kmsiface.ErrKeyNotFound:
		return "KeyNotFound"
	case c == kmsiface.ErrThrottling:
		return "Throttling"
	case c == kmsiface.ErrInvalidKey:
		return "InvalidKey"
	case c == kmsiface.ErrInvalidCiphertext:
		return "InvalidCiphertext"
	case errors.Is(err, ErrNotAllowed):
		return "NotAllowed"
	case apiCode(err, "OptInRequired", "SubscriptionRequiredException", "KMSOptInRequired"):
		return "OptInRequired"
	}
	return "Other"
}

// apiCode reports whether err carries an API error with one of codes.
func apiCode(err error, codes ...string) bool {
	var api smithy.APIError
	return errors.As(err, &api) && slices.Contains(codes, api.ErrorCode())
}

// counters are the slow-path counters, shared by producer and consumer.
type counters struct {
	hits      stripedCounter
	misses    atomic.Uint64
	calls     atomic.Uint64
	refreshes atomic.Uint64
	evictions atomic.Uint64
	limited   atomic.Uint64

	mu       sync.Mutex
	failures map[string]uint64
}

func (c *counters) fail(err error) {
	class := failureClass(err)
	c.mu.Lock()
	if c.failures == nil {
		c.failures = make(map[string]uint64)
	}
	c.failures[class]++
	c.mu.Unlock()
}

func (c *counters) stats() Stats {
	s := Stats{
		Hits:        c.hits.load(),
		Misses:      c.misses.Load(),
		KMSCalls:    c.calls.Load(),
		Refreshes:   c.refreshes.Load(),
		Evictions:   c.evictions.Load(),
		RateLimited: c.limited.Load(),
		Failures:    make(map[string]uint64),
	}
	c.mu.Lock()
	for k, v := range c.failures {
		s.Failures[k] = v
	}
	c.mu.Unlock()
	return s
}

// stripes is the number of cache lines a stripedCounter spreads over.
const stripes = 8

// stripedCounter is a counter that concurrent goroutines increment without
// sharing a cache line most of the time: each increment goes to a random
// stripe.
type stripedCounter struct {
	s [stripes]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

// add adds d to a random stripe and returns that stripe's new value.
func (c *stripedCounter) add(d uint64) uint64 {
	return c.s[rand.Uint32()%stripes].n.Add(d)
}

func (c *stripedCounter) load() uint64 {
	var t uint64
	for i := range c.s {
		t += c.s[i].n.Load()
	}
	return t
}
