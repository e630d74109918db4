package record

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/ksse-go/ksse/keycache"
)

// Record size limits.
const (
	// DefaultMaxRecordSize is the Kinesis record limit: data and partition
	// key together, 1 MiB.
	DefaultMaxRecordSize = 1 << 20
	// MaxRecordSizeLimit is the largest record size Kinesis can be
	// configured to accept, 10 MiB.
	MaxRecordSizeLimit = 10 << 20
	// MaxPartitionKeyLength is the Kinesis limit on a partition key, in
	// Unicode characters.
	MaxPartitionKeyLength = 256
	// MaxPutRecordsEntries is the most records one PutRecords call takes.
	MaxPutRecordsEntries = 500
	// DefaultMaxPutRecordsSize is the Kinesis limit on one PutRecords
	// request: 5 MiB of data and partition keys.
	DefaultMaxPutRecordsSize = 5 << 20
)

// OutboundPartitionKey is the partition key of every encrypted record on
// the wire. It is the same for all records, so it reveals nothing; routing
// is done by the ExplicitHashKey.
const OutboundPartitionKey = "ksse"

// EncryptorOptions configure an [Encryptor]. A zero field selects its
// documented default. A value out of range makes [NewEncryptor] fail with
// ErrInvalidInput.
type EncryptorOptions struct {
	// MaxRecordSize is the stream's record limit, applied to the encrypted
	// record (envelope plus outbound partition key). Default 1 MiB; at most
	// 10 MiB, for streams configured for larger records.
	MaxRecordSize int

	// MaxPutRecordsSize is the limit on one PutRecords request. Default
	// 5 MiB, or MaxRecordSize if that is larger.
	MaxPutRecordsSize int

	// TTL is how long a data key is used, from its creation. Default
	// 5 minutes. A routing secret (RoutingKey) is fetched again after as
	// long.
	TTL time.Duration

	// RefreshAhead is how long before expiry the next data key is fetched
	// in the background. Default TTL/20. It must be less than TTL; negative
	// disables refresh-ahead.
	RefreshAhead time.Duration

	// RefreshRetry is how long to wait after a failed background refresh,
	// of a data key or a routing secret, before trying again. Default 5 s.
	RefreshRetry time.Duration

	// MaxRecordsPerKey retires a data key after this many records. Default
	// 2³² (see FORMAT.md, Limits).
	MaxRecordsPerKey uint64

	// MaxBytesPerKey retires a data key after this many payload bytes.
	// Zero means no limit. A larger payload fails with ErrRecordTooLarge.
	MaxBytesPerKey uint64

	// CallTimeout bounds each GenerateDataKey call. Default 30 s.
	CallTimeout time.Duration

	// KMSOptions are passed to every KMS call.
	KMSOptions []func(*kms.Options)

	// KinesisOptions are applied to every Kinesis call the Encryptor
	// makes.
	KinesisOptions []func(*kinesis.Options)

	// RoutingKey turns on keyed routing, with this HMAC_256 KMS key. The
	// ExplicitHashKey of a record is then HMAC-SHA256(routing secret,
	// partition key), truncated to 128 bits, instead of the MD5 of the
	// partition key, which anyone can compute from a guessed key.
	//
	//   - The routing secret of a stream is the KMS GenerateMac
	//     (HMAC_SHA_256) of "ksse v1 routing key", a zero byte and the
	//     stream identity. It is fetched once per stream and TTL.
	//   - Every producer with the key computes the same secret, so a
	//     partition key keeps one shard and its order.
	//   - The client must also have GenerateMac and DescribeKey, as
	//     *kms.Client does.
	//   - A key of another type fails the first record, before anything is
	//     sent.
	RoutingKey string

	// Now returns the current time. Default time.Now. Tests inject a fake
	// clock here.
	Now func() time.Time

	// MeterProvider receives ksse's metrics (see Metrics in the package
	// documentation). Nil: none, at no cost.
	MeterProvider metrics.MeterProvider
	// TracerProvider receives a span per Encryptor.PutRecords call. Nil:
	// none. Through ksse.WithEncryption, the SDK client's own
	// TracerProvider traces the call.
	TracerProvider tracing.TracerProvider
}

func (o *EncryptorOptions) resolve() error {
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.MaxRecordSize < 0 || o.MaxRecordSize > MaxRecordSizeLimit {
		return fmt.Errorf("%w: MaxRecordSize %d is not between 1 and %d", ErrInvalidInput, o.MaxRecordSize, MaxRecordSizeLimit)
	}
	if o.MaxPutRecordsSize < 0 {
		return fmt.Errorf("%w: negative MaxPutRecordsSize %d", ErrInvalidInput, o.MaxPutRecordsSize)
	}
	if o.MaxPutRecordsSize == 0 {
		o.MaxPutRecordsSize = max(DefaultMaxPutRecordsSize, o.MaxRecordSize)
	}
	// The key cache checks the rest. Routing secrets need these three
	// resolved here too.
	if o.TTL == 0 {
		o.TTL = keycache.DefaultTTL
	}
	if o.RefreshRetry == 0 {
		o.RefreshRetry = keycache.DefaultRefreshRetry
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.KMSOptions = slices.Clone(o.KMSOptions)
	return nil
}

func (o *EncryptorOptions) cacheOptions(c *keycache.ProducerOptions) {
	*c = keycache.ProducerOptions{
		TTL:              o.TTL,
		RefreshAhead:     o.RefreshAhead,
		RefreshRetry:     o.RefreshRetry,
		MaxRecordsPerKey: o.MaxRecordsPerKey,
		MaxBytesPerKey:   o.MaxBytesPerKey,
		CallTimeout:      o.CallTimeout,
		KMSOptions:       o.KMSOptions,
		Now:              o.Now,
	}
}

const (
	// defaultMaxNewKeysPerBatch is how many wrapped keys that are not in
	// the cache one batch may unwrap.
	defaultMaxNewKeysPerBatch = 128
	// unwrapFanout is how many KMS Decrypt calls one batch makes at once.
	unwrapFanout = 16
)

// DecryptorOptions configure a [Decryptor]. A zero field selects its
// documented default, except AllowedKeys. A value out of range makes
// [NewDecryptor] fail with ErrInvalidInput.
type DecryptorOptions struct {
	// AllowedKeys lists the KMS keys whose data keys the Decryptor accepts,
	// as key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID), which is how KMS
	// names the key of a wrapped key. A key ID or an alias is refused: it
	// would match no record. Each is sent in turn as the KeyId of Decrypt,
	// so KMS itself refuses the wrapped keys of other keys, without using
	// them. Required, unless InsecureAllowAnyKey is set.
	//
	// The ARN of a multi-Region key ("key/mrk-…") also matches its replicas
	// in other Regions of the same account: they share its key material,
	// and KMS names the replica of the Region it is called in. So a
	// consumer reads, with a KMS client of its own Region, records written
	// in another, even while that Region is down.
	AllowedKeys []string

	// InsecureAllowAnyKey accepts the data keys of any KMS key that the
	// Decryptor's credentials may decrypt with. Records are then only as
	// authentic as those credentials are narrow: anyone who can write to
	// the stream and use such a key (another team's, or another account's
	// with an open key policy) can forge records. For tools that discover
	// keys, never for consumers that act on the data.
	InsecureAllowAnyKey bool

	// AllowPlaintext passes through records that are not envelopes, marked
	// with EncryptionType NONE, as Kinesis does for records written before
	// server-side encryption was enabled. By default they are rejected with
	// ErrNotEncrypted.
	AllowPlaintext bool

	// MaxNewKeysPerBatch bounds the wrapped keys not in the cache that one
	// batch (DecryptBatch, DecryptRecords) unwraps. Records under further
	// new keys fail at once with keycache.ErrRateLimited, a transient error.
	// Default 128.
	MaxNewKeysPerBatch int

	// TTL is how long an unwrapped key is kept, from its creation. Default
	// 5 minutes.
	TTL time.Duration
	// MaxEntries bounds the unwrapped keys held. Default 10,000.
	MaxEntries int
	// NegativeTTL is how long a permanent KMS refusal is remembered after
	// its last lookup (at most 10 times as long in all). Default 1 minute,
	// or TTL if that is shorter. It must not exceed TTL.
	NegativeTTL time.Duration
	// MaxFailures bounds the refusals remembered. Default 10,000, the most
	// records one GetRecords returns: a consumer reading k shards at once in
	// skip mode (ksse.Options.OnReject) needs 10,000·k to be sure that a
	// response full of forged records is passed after retries.
	MaxFailures int
	// DecryptRate and DecryptBurst bound the KMS Decrypt calls made on
	// cache misses: DecryptRate calls a second, DecryptBurst at once.
	// Defaults 50 and 256. A negative DecryptRate lifts the limit.
	DecryptRate  float64
	DecryptBurst int
	// CallTimeout bounds each KMS call. Default 30 s.
	CallTimeout time.Duration
	// KMSOptions are passed to every KMS call.
	KMSOptions []func(*kms.Options)
	// Now returns the current time. Default time.Now.
	Now func() time.Time

	// MeterProvider receives ksse's metrics (see Metrics in the package
	// documentation). Nil: none, at no cost.
	MeterProvider metrics.MeterProvider
	// TracerProvider receives a span per DecryptBatch (and DecryptRecords)
	// call. Nil: none.
	TracerProvider tracing.TracerProvider
}

func (o *DecryptorOptions) resolve() error {
	if len(o.AllowedKeys) == 0 && !o.InsecureAllowAnyKey {
		return fmt.Errorf("%w: a Decryptor needs AllowedKeys, the ARNs of the KMS keys it trusts (or InsecureAllowAnyKey, to trust any key its credentials can use)", ErrInvalidInput)
	}
	for _, k := range o.AllowedKeys {
		if !IsKeyARN(k) {
			return fmt.Errorf("%w: AllowedKeys entry %q is not a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID): KMS names keys by ARN, so it would match no record; resolve it with KMS DescribeKey", ErrInvalidInput, k)
		}
	}
	if o.MaxNewKeysPerBatch < 0 {
		return fmt.Errorf("%w: negative MaxNewKeysPerBatch", ErrInvalidInput)
	}
	if o.MaxNewKeysPerBatch == 0 {
		o.MaxNewKeysPerBatch = defaultMaxNewKeysPerBatch
	}
	o.AllowedKeys = slices.Clone(o.AllowedKeys)
	return nil
}

func (o *DecryptorOptions) cacheOptions(c *keycache.ConsumerOptions) {
	*c = keycache.ConsumerOptions{
		TTL:                 o.TTL,
		MaxEntries:          o.MaxEntries,
		CallTimeout:         o.CallTimeout,
		AllowedKeyIDs:       o.AllowedKeys,
		InsecureAllowAnyKey: o.InsecureAllowAnyKey,
		NegativeTTL:         o.NegativeTTL,
		MaxFailures:         o.MaxFailures,
		DecryptRate:         o.DecryptRate,
		DecryptBurst:        o.DecryptBurst,
		KMSOptions:          o.KMSOptions,
		Now:                 o.Now,
	}
}

// IsKeyARN reports whether s is the ARN of a KMS key
// (arn:PARTITION:kms:REGION:ACCOUNT:key/ID), not of an alias.
func IsKeyARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "kms" || parts[3] == "" || parts[4] == "" {
		return false
	}
	id, ok := strings.CutPrefix(parts[5], "key/")
	return ok && id != "" && !strings.ContainsAny(id, "/: ")
}
