package record

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

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

// Options configure an [Encryptor] or a [Decryptor]. The zero value of every
// field selects its documented default.
type Options struct {
	// MaxRecordSize is the stream's record limit, applied to the encrypted
	// record (envelope plus outbound partition key). Default 1 MiB; at most
	// 10 MiB, for streams configured for larger records.
	MaxRecordSize int

	// MaxPutRecordsSize is the limit on one PutRecords request. Default
	// 5 MiB, or MaxRecordSize if that is larger.
	MaxPutRecordsSize int

	// AllowPlaintext lets a Decryptor pass through records that are not
	// envelopes, marked with EncryptionType NONE, as Kinesis does for
	// records written before server-side encryption was enabled. By
	// default such records are rejected with ErrNotEncrypted.
	AllowPlaintext bool

	// Cache configures the key cache (TTL, size bound, strict mode with
	// AllowedKeyIDs, clock, KMS call options). See keycache.Options.
	Cache keycache.Options

	// KinesisOptions are applied to every Kinesis call the Encryptor
	// makes.
	KinesisOptions []func(*kinesis.Options)
}

func (o *Options) resolve() error {
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.MaxRecordSize < 0 || o.MaxRecordSize > MaxRecordSizeLimit {
		return fmt.Errorf("%w: MaxRecordSize %d is not between 1 and %d", ErrInvalidInput, o.MaxRecordSize, MaxRecordSizeLimit)
	}
	if o.MaxPutRecordsSize == 0 {
		o.MaxPutRecordsSize = max(DefaultMaxPutRecordsSize, o.MaxRecordSize)
	}
	return nil
}

func (o *Options) cacheOptions(c *keycache.Options) { *c = o.Cache }
