package keycache

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/ksse-go/ksse/kmsiface"
)

// ErrRateLimited is returned by a consumer for a cache miss when the KMS
// Decrypt budget is spent (see [ConsumerOptions].DecryptRate). Package
// record also returns it for a wrapped key beyond a batch's bound. No KMS
// call was made: retrying later may succeed.
var ErrRateLimited = errors.New("keycache: KMS Decrypt budget spent; retry later")

// errNoAllowedKeys is the answer of a consumer with no AllowedKeyIDs and no
// InsecureAllowAnyKey: it trusts no key.
var errNoAllowedKeys = fmt.Errorf("%w: no AllowedKeyIDs configured (set them, or InsecureAllowAnyKey)", ErrNotAllowed)

// refusals remembers the wrapped keys that KMS refused for good, by SHA-256
// of (binding, wrapped key). It holds digests and compact errors, not
// wrapped keys or the SDK's errors (which keep the request alive), so a
// refusal costs the same whatever the size of the forged wrapped key.
//
// A refusal lives for the negative TTL, and each lookup extends it, up to
// maxLifetimes negative TTLs from the first refusal: a consumer that
// retries a batch of forged records keeps the refusals it has already paid
// for, so each retry makes progress. At most max are held; expired ones are
// dropped first, then the oldest.
type refusals struct {
	mu   sync.Mutex
	max  int
	ttl  time.Duration
	m    map[[sha256.Size]byte]*refusal
	ring [][sha256.Size]byte // insertion order: ring[head], …, ring[head+n-1]
	head int
	n    int
}

// maxLifetimes bounds how long lookups can keep a refusal alive, in negative
// TTLs: a key that was disabled and enabled again is asked again by then.
const maxLifetimes = 10

type refusal struct {
	err      error
	keyARN   string
	expires  time.Time
	deadline time.Time // the latest expires may reach
}

func (r *refusals) init(max int, ttl time.Duration) {
	r.max, r.ttl = max, ttl
	r.m = make(map[[sha256.Size]byte]*refusal)
	r.ring = make([][sha256.Size]byte, max)
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
// KMS named if any, or a nil error; it extends a refusal it returns.
func (r *refusals) get(wk []byte, ad string, now time.Time) (error, string) {
	id := refusalID(wk, ad)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.m[id]
	if !ok || !now.Before(f.expires) {
		return nil, ""
	}
	f.expires = now.Add(r.ttl)
	if f.deadline.Before(f.expires) {
		f.expires = f.deadline
	}
	return f.err, f.keyARN
}

func (r *refusals) put(wk, ad string, err error, keyARN string, now time.Time) {
	id := refusalID([]byte(wk), ad)
	f := &refusal{err: compact(err), keyARN: keyARN, expires: now.Add(r.ttl), deadline: now.Add(maxLifetimes * r.ttl)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[id]; ok {
		r.m[id] = f
		return
	}
	for r.n > 0 {
		old, ok := r.m[r.ring[r.head]]
		if ok && now.Before(old.expires) && r.n < r.max {
			break
		}
		delete(r.m, r.ring[r.head])
		r.head = (r.head + 1) % r.max
		r.n--
	}
	r.ring[(r.head+r.n)%r.max] = id
	r.n++
	r.m[id] = f
}

// live returns the number of refusals that have not expired.
func (r *refusals) live(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, f := range r.m {
		if now.Before(f.expires) {
			n++
		}
	}
	return n
}

// compact returns an error that matches err's class and KMS exception type
// with errors.Is and errors.As, and keeps its message, but not the request
// and response the SDK's error holds.
func compact(err error) error {
	var ke *kmsiface.Error
	if !errors.As(err, &ke) {
		return err // ErrNotAllowed and the like: small, and no SDK error inside
	}
	var api smithy.APIError
	var inner error = errors.New(truncate(ke.Err.Error()))
	if errors.As(err, &api) {
		msg := ptr(truncate(api.ErrorMessage()))
		var ic *types.InvalidCiphertextException
		var ik *types.IncorrectKeyException
		switch {
		case errors.As(err, &ic):
			inner = &types.InvalidCiphertextException{Message: msg}
		case errors.As(err, &ik):
			inner = &types.IncorrectKeyException{Message: msg}
		default:
			inner = &smithy.GenericAPIError{Code: api.ErrorCode(), Message: *msg, Fault: api.ErrorFault()}
		}
	}
	return &kmsiface.Error{Op: ke.Op, Class: ke.Class, Err: inner}
}

func truncate(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
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
