package keycache

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrRateLimited is returned by a consumer for a cache miss when the KMS
// Decrypt budget is spent (see [Options].DecryptRate), and by package record
// for a record whose wrapped key is beyond a batch's bound. No KMS call was
// made; retrying later may succeed.
var ErrRateLimited = errors.New("keycache: KMS Decrypt budget spent; retry later")

// errNoAllowedKeys is the answer of a consumer with no AllowedKeyIDs and no
// InsecureAllowAnyKey: it trusts no key.
var errNoAllowedKeys = fmt.Errorf("%w: no AllowedKeyIDs configured (set them, or InsecureAllowAnyKey)", ErrNotAllowed)

// refusals remembers the wrapped keys that KMS refused for good, by SHA-256
// of (binding, wrapped key), until they expire or max newer ones push them
// out. It holds digests, not wrapped keys, so a refusal costs the same
// whatever the size of the forged wrapped key.
type refusals struct {
	mu   sync.Mutex
	max  int
	m    map[[sha256.Size]byte]refusal
	fifo [][sha256.Size]byte // insertion order; a ring of max slots
	head int                 // oldest slot of fifo once full
}

type refusal struct {
	err     error
	keyARN  string
	expires time.Time
}

func (r *refusals) init(max int) {
	r.max = max
	r.m = make(map[[sha256.Size]byte]refusal)
}

func refusalID(wk []byte, ad string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(ad))
	h.Write([]byte{0})
	h.Write(wk)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	return id
}

// get returns the remembered refusal of (wk, ad), with the ARN of the key
// KMS named if any, or a nil error.
func (r *refusals) get(wk []byte, ad string, now time.Time) (error, string) {
	id := refusalID(wk, ad)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.m[id]
	if !ok || !now.Before(f.expires) {
		return nil, ""
	}
	return f.err, f.keyARN
}

func (r *refusals) put(wk, ad string, err error, keyARN string, expires time.Time) {
	id := refusalID([]byte(wk), ad)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[id]; ok {
		r.m[id] = refusal{err, keyARN, expires}
		return
	}
	if len(r.fifo) < r.max {
		r.fifo = append(r.fifo, id)
	} else {
		delete(r.m, r.fifo[r.head])
		r.fifo[r.head] = id
		r.head = (r.head + 1) % r.max
	}
	r.m[id] = refusal{err, keyARN, expires}
}

func (r *refusals) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// tokenBucket limits the rate of KMS calls: it refills at rate tokens per
// second up to burst. A negative rate disables it.
type tokenBucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *tokenBucket) init(rate float64, burst int, now time.Time) {
	b.rate, b.burst, b.tokens, b.last = rate, float64(burst), float64(burst), now
}

// take spends a token if there is one.
func (b *tokenBucket) take(now time.Time) bool {
	if b.rate < 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
