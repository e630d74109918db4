package keycache

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Defaults that package record shares, so that its routing secrets live as
// long as data keys.
const (
	// DefaultTTL is the default TTL of both caches.
	DefaultTTL = 5 * time.Minute
	// DefaultRefreshRetry is the default RefreshRetry of a producer.
	DefaultRefreshRetry = 5 * time.Second
)

// ProducerOptions configure a [Producer]. A zero field selects its
// documented default. A value out of range makes [NewProducer] fail.
type ProducerOptions struct {
	// TTL is how long a data key is used, from its creation. Default
	// 5 minutes.
	TTL time.Duration

	// RefreshAhead is how long before expiry the replacement key is
	// fetched in the background. Default TTL/20 (15 s for the default
	// TTL). It must be less than TTL; negative disables refresh-ahead. A
	// KMS outage shorter than RefreshAhead plus the time left on the
	// current key fails no record.
	RefreshAhead time.Duration

	// RefreshRetry is how long to wait after a failed background refresh
	// before trying again. The current key stays in use until it expires.
	// Default 5 s.
	RefreshRetry time.Duration

	// MaxRecordsPerKey retires a data key after this many records. Default
	// 2³² (see FORMAT.md, Limits). The count is kept in stripes, so the hot
	// path shares no counter: a key retires when any stripe reaches its
	// share, slightly early and never late.
	MaxRecordsPerKey uint64

	// MaxBytesPerKey retires a data key after this many payload bytes.
	// Zero means no limit.
	MaxBytesPerKey uint64

	// CallTimeout bounds each KMS call. Default 30 s. A call is shared by
	// every caller waiting for it, so it is bound to no caller's context;
	// a caller whose context ends first returns at once.
	CallTimeout time.Duration

	// KMSOptions are passed to every KMS call.
	KMSOptions []func(*kms.Options)

	// OnKMSCall, if set, is called after every GenerateDataKey call with
	// its duration and its class: "" for success, else a key of
	// Stats.Failures. It runs on the calling goroutine and must not block.
	OnKMSCall func(op string, d time.Duration, class string)

	// Now returns the current time. Default time.Now. Tests inject a fake
	// clock here.
	Now func() time.Time
}

// ConsumerOptions configure a [Consumer]. A zero field selects its
// documented default. A value out of range makes [NewConsumer] fail.
type ConsumerOptions struct {
	// AllowedKeyIDs lists the KMS keys whose data keys the consumer
	// unwraps: key ARNs, as KMS reports them in DecryptOutput.KeyId.
	//
	//   - Each is sent in turn as the KeyId of Decrypt, so KMS refuses a
	//     wrapped key of any other key without using it. A list of n keys
	//     costs up to n calls per new wrapped key.
	//   - A multi-Region key's ARN also matches its replicas in other
	//     Regions of the same account. It is sent as the replica of the
	//     client's Region.
	//   - With no entry the consumer unwraps nothing: every lookup fails
	//     with ErrNotAllowed, unless InsecureAllowAnyKey is set.
	AllowedKeyIDs []string

	// InsecureAllowAnyKey makes a consumer with no AllowedKeyIDs accept the
	// data keys of any KMS key its credentials may decrypt with. Anyone who
	// can write to the stream and use such a key can then forge records.
	InsecureAllowAnyKey bool

	// TTL is how long an unwrapped key is kept, from its creation. Default
	// 5 minutes.
	TTL time.Duration

	// MaxEntries bounds the unwrapped keys held. Default 10,000. The least
	// recently used key is evicted first.
	MaxEntries int

	// NegativeTTL is how long a wrapped key that KMS refused for good is
	// remembered (see [Permanent]): NegativeTTL after its last lookup, and
	// at most 10 NegativeTTLs after the refusal. So a consumer that retries
	// a batch keeps what it has learnt. Default 1 minute, or TTL if that is
	// shorter. It must not exceed TTL.
	//
	// Refusals are held apart from working keys, so they never evict one.
	// Refusals of an allowed key itself (disabled, denied, …) are not
	// remembered: they pass once the key is fixed.
	NegativeTTL time.Duration

	// MaxFailures bounds the refusals remembered. Default 10,000, the most
	// records one GetRecords returns. Each takes about 300 bytes, whatever
	// the size of the wrapped key. Expired ones are dropped first, then the
	// oldest.
	MaxFailures int

	// DecryptRate and DecryptBurst bound the Decrypt calls started on cache
	// misses: a token bucket that refills at DecryptRate calls a second and
	// holds at most DecryptBurst. Defaults 50 and 256. A miss that finds
	// the bucket empty fails at once with ErrRateLimited, and makes no
	// call. A negative DecryptRate disables the limit.
	DecryptRate  float64
	DecryptBurst int

	// CallTimeout bounds each KMS call. Default 30 s. A call is shared by
	// every caller waiting for it, so it is bound to no caller's context;
	// a caller whose context ends first returns at once.
	CallTimeout time.Duration

	// KMSOptions are passed to every KMS call.
	KMSOptions []func(*kms.Options)

	// OnKMSCall, if set, is called after every Decrypt call with its
	// duration and its class: "" for success, else a key of
	// Stats.Failures. It runs on the calling goroutine and must not block.
	OnKMSCall func(op string, d time.Duration, class string)

	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// errOptions starts the error of an option out of range.
var errOptions = errors.New("keycache: invalid options")

func (o *ProducerOptions) resolve() error {
	switch {
	case o.TTL < 0:
		return fmt.Errorf("%w: negative TTL %v", errOptions, o.TTL)
	case o.RefreshRetry < 0:
		return fmt.Errorf("%w: negative RefreshRetry %v", errOptions, o.RefreshRetry)
	case o.CallTimeout < 0:
		return fmt.Errorf("%w: negative CallTimeout %v", errOptions, o.CallTimeout)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.RefreshAhead == 0 {
		o.RefreshAhead = o.TTL / 20
	}
	if o.RefreshAhead >= o.TTL {
		return fmt.Errorf("%w: RefreshAhead %v is not less than TTL %v", errOptions, o.RefreshAhead, o.TTL)
	}
	if o.RefreshRetry == 0 {
		o.RefreshRetry = DefaultRefreshRetry
	}
	if o.MaxRecordsPerKey == 0 {
		o.MaxRecordsPerKey = 1 << 32
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.KMSOptions = slices.Clone(o.KMSOptions)
	return nil
}

func (o *ConsumerOptions) resolve() error {
	switch {
	case o.TTL < 0:
		return fmt.Errorf("%w: negative TTL %v", errOptions, o.TTL)
	case o.MaxEntries < 0:
		return fmt.Errorf("%w: negative MaxEntries %d", errOptions, o.MaxEntries)
	case o.NegativeTTL < 0:
		return fmt.Errorf("%w: negative NegativeTTL %v", errOptions, o.NegativeTTL)
	case o.MaxFailures < 0:
		return fmt.Errorf("%w: negative MaxFailures %d", errOptions, o.MaxFailures)
	case o.DecryptBurst < 0:
		return fmt.Errorf("%w: negative DecryptBurst %d", errOptions, o.DecryptBurst)
	case o.CallTimeout < 0:
		return fmt.Errorf("%w: negative CallTimeout %v", errOptions, o.CallTimeout)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.NegativeTTL > o.TTL {
		return fmt.Errorf("%w: NegativeTTL %v is longer than TTL %v", errOptions, o.NegativeTTL, o.TTL)
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = min(time.Minute, o.TTL)
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = 10000
	}
	if o.MaxFailures == 0 {
		o.MaxFailures = 10000
	}
	if o.DecryptRate == 0 {
		o.DecryptRate = 50
	}
	if o.DecryptBurst == 0 {
		o.DecryptBurst = 256
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.AllowedKeyIDs = slices.Clone(o.AllowedKeyIDs)
	o.KMSOptions = slices.Clone(o.KMSOptions)
	return nil
}
