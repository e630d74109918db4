package keycache

import (
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Default values of [Options].
const (
	DefaultTTL              = 5 * time.Minute
	DefaultMaxRecordsPerKey = 1 << 32
	DefaultMaxEntries       = 10000
	DefaultCallTimeout      = 30 * time.Second
	DefaultRefreshRetry     = 5 * time.Second
	DefaultNegativeTTL      = time.Minute
	DefaultMaxFailures      = 10000
	DefaultDecryptRate      = 50
	DefaultDecryptBurst     = 256
)

// Options configure a [Producer] or a [Consumer]. The zero value of every
// field selects its documented default.
type Options struct {
	// TTL is how long a data key is used (producer) or an unwrapped key is
	// kept (consumer), measured from its creation. Default 5 minutes.
	TTL time.Duration

	// RefreshAhead is how long before expiry a producer fetches the
	// replacement key in the background. Default TTL/20 (15 s for the
	// default TTL). A KMS outage shorter than this plus the time left on the
	// current key fails no record. Negative disables refresh-ahead.
	RefreshAhead time.Duration

	// RefreshRetry is how long a producer waits after a failed background
	// refresh before trying again (the current key stays in use until it
	// expires). Default 5 s.
	RefreshRetry time.Duration

	// MaxRecordsPerKey retires a producer's data key after this many
	// records. Default 2³² (see FORMAT.md, Limits). The count is kept in
	// stripes so the hot path shares no counter; a key is retired when any
	// stripe reaches its share, so slightly early, never late.
	MaxRecordsPerKey uint64

	// MaxBytesPerKey retires a producer's data key after this many payload
	// bytes. Zero means no limit.
	MaxBytesPerKey uint64

	// MaxEntries bounds the number of unwrapped keys a consumer holds.
	// Default 10,000. The least recently used key is evicted first.
	MaxEntries int

	// CallTimeout bounds each KMS call, which is shared by all callers
	// waiting for it and so is not bound to one caller's context. Default
	// 30 s. A caller whose own context ends first returns at once.
	CallTimeout time.Duration

	// AllowedKeyIDs, for a consumer, lists the KMS keys whose data keys it
	// unwraps: key ARNs as KMS reports them in DecryptOutput.KeyId. Each is
	// sent in turn as the KeyId of Decrypt, so that KMS refuses a wrapped
	// key of any other key without using it (a key list of n costs up to n
	// calls per new wrapped key). A consumer with no entry unwraps
	// nothing (every lookup fails with ErrNotAllowed), unless
	// InsecureAllowAnyKey is set. A multi-Region key's ARN also matches its
	// replicas in other Regions of the same account, and is sent as its key
	// ID, which names the replica of the Region called.
	AllowedKeyIDs []string

	// InsecureAllowAnyKey makes a consumer with no AllowedKeyIDs accept the
	// data keys of any KMS key its credentials may decrypt with. Anyone who
	// can write to the stream and use such a key can then forge records.
	InsecureAllowAnyKey bool

	// NegativeTTL is how long a consumer remembers a wrapped key that KMS
	// refused for good (invalid ciphertext, access denied, key disabled, not
	// found or in an invalid state, not allowed): NegativeTTL after its last
	// lookup, and at most 10 NegativeTTLs after the refusal, so that a
	// consumer retrying a batch keeps what it has learnt. Default 1 minute,
	// and never longer than TTL. Refusals of an allowed key itself
	// (disabled, denied, …) are not remembered: they pass once it is fixed.
	// Refusals are held apart from working keys, so they never evict one.
	NegativeTTL time.Duration

	// MaxFailures bounds the refusals a consumer remembers. Default 10,000:
	// the most records one GetRecords returns. Each takes about 300 bytes (a
	// SHA-256 of the wrapped key and a compact error), whatever the wrapped
	// key's size. Expired ones are dropped first, then the oldest.
	MaxFailures int

	// DecryptRate and DecryptBurst bound the KMS Decrypt calls a consumer
	// starts on cache misses: a token bucket that refills at DecryptRate
	// calls per second and holds at most DecryptBurst. Defaults 50 and 256.
	// A miss that finds the bucket empty fails at once with ErrRateLimited
	// and makes no call. A negative DecryptRate disables the limit.
	DecryptRate  float64
	DecryptBurst int

	// KMSOptions are passed to every KMS call.
	KMSOptions []func(*kms.Options)

	// OnKMSCall, if set, is called after every GenerateDataKey or Decrypt
	// call with the operation, its duration and its error (nil, or as the
	// cache returns it). It runs on the calling goroutine and must not
	// block.
	OnKMSCall func(op string, d time.Duration, err error)

	// Now returns the current time. Default time.Now. Tests inject a fake
	// clock here.
	Now func() time.Time
}

func (o *Options) resolve() {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.RefreshAhead == 0 {
		o.RefreshAhead = o.TTL / 20
	}
	if o.RefreshAhead >= o.TTL {
		o.RefreshAhead = o.TTL / 2
	}
	if o.RefreshRetry <= 0 {
		o.RefreshRetry = DefaultRefreshRetry
	}
	if o.MaxRecordsPerKey == 0 {
		o.MaxRecordsPerKey = DefaultMaxRecordsPerKey
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.MaxFailures <= 0 {
		o.MaxFailures = DefaultMaxFailures
	}
	if o.DecryptRate == 0 {
		o.DecryptRate = DefaultDecryptRate
	}
	if o.DecryptBurst <= 0 {
		o.DecryptBurst = DefaultDecryptBurst
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.AllowedKeyIDs = slices.Clone(o.AllowedKeyIDs)
	o.KMSOptions = slices.Clone(o.KMSOptions)
}
