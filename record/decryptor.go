package record

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
)

// Decryptor decrypts records for the consuming side. Create one with
// [NewDecryptor] and share it; it is safe for concurrent use.
type Decryptor struct {
	cache *keycache.Consumer
	opts  Options
	bind  bindings
}

// NewDecryptor returns a Decryptor that unwraps data keys with
// client.Decrypt. By default it accepts data keys of any KMS key the
// client's credentials may use; set Options.Cache.AllowedKeyIDs to restrict
// them (strict mode).
func NewDecryptor(client kmsiface.Client, optFns ...func(*Options)) (*Decryptor, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil KMS client", ErrInvalidInput)
	}
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	return &Decryptor{opts: o, cache: keycache.NewConsumer(client, o.cacheOptions)}, nil
}

// Decrypted is a decrypted record.
type Decrypted struct {
	// PartitionKey is the plaintext partition key; empty for a plaintext
	// record passed through.
	PartitionKey string
	// Data is the plaintext payload.
	Data []byte
	// Encrypted is false for a plaintext record passed through
	// (AllowPlaintext).
	Encrypted bool
	// KeyARN is the KMS key that protected the record's data key.
	KeyARN string
}

// Decrypt authenticates and decrypts the Data of one record of stream (name
// or ARN). It returns envelope.ErrOpen for a record that is not authentic
// under the stream (including a wrapped key that KMS refuses for the
// stream's encryption context), ErrNotEncrypted for a plaintext record (unless
// AllowPlaintext, which returns it as is with Encrypted false), and a KMS
// error (*kmsiface.Error) or keycache.ErrNotAllowed when the data key cannot
// be unwrapped. It never returns unauthenticated bytes.
func (d *Decryptor) Decrypt(ctx context.Context, stream string, data []byte) (Decrypted, error) {
	b, err := d.bind.kinesisStream(stream)
	if err != nil {
		return Decrypted{}, err
	}
	return d.decrypt(ctx, b, data)
}

func (d *Decryptor) decrypt(ctx context.Context, b *binding, data []byte) (Decrypted, error) {
	if !envelope.IsEnvelope(data) {
		if d.opts.AllowPlaintext {
			return Decrypted{Data: data}, nil
		}
		return Decrypted{}, ErrNotEncrypted
	}
	e, rest, err := envelope.Parse(data)
	if err != nil || len(rest) != 0 {
		return Decrypted{}, envelope.ErrOpen
	}
	out, n, arn, err := d.open(ctx, nil, b, &e)
	if err != nil {
		return Decrypted{}, err
	}
	return Decrypted{PartitionKey: string(out[:n]), Data: out[n:], Encrypted: true, KeyARN: arn}, nil
}

// Open authenticates and decrypts the parsed envelope e of stream s and
// appends its partition key and payload to dst, as envelope.Key.Open does.
// It is the low-level form of Decrypt, for envelopes that do not come one
// per Kinesis record (Firehose objects). It also returns the ARN of the KMS
// key that protected the data key.
func (d *Decryptor) Open(ctx context.Context, dst []byte, s Stream, e *envelope.Envelope) (out []byte, partitionKeyLen int, keyARN string, err error) {
	if !s.valid() {
		return dst, 0, "", fmt.Errorf("%w: zero Stream", ErrInvalidStream)
	}
	if e == nil {
		return dst, 0, "", fmt.Errorf("%w: nil envelope", ErrInvalidInput)
	}
	if !e.Valid() {
		// Not one Parse returns: no KMS call for its wrapped key.
		return dst, 0, "", envelope.ErrOpen
	}
	return d.open(ctx, dst, d.bind.of(s), e)
}

func (d *Decryptor) open(ctx context.Context, dst []byte, b *binding, e *envelope.Envelope) ([]byte, int, string, error) {
	for attempt := 0; ; attempt++ {
		key, arn, err := d.cache.Key(ctx, e.WrappedKey, b.kb)
		if err != nil {
			if keycache.IsInvalidCiphertext(err) {
				// KMS refused the wrapped key for this stream's context:
				// tampered, or moved from another stream. To the caller that
				// is one more authentication failure.
				err = envelope.ErrOpen
			}
			return dst, 0, arn, err
		}
		out, n, err := key.Open(dst, e)
		if errors.Is(err, envelope.ErrKeyDestroyed) && attempt < 3 {
			continue // evicted while in use; unwrap again
		}
		return out, n, arn, err
	}
}

// DecryptRecords decrypts, in place, the records of a GetRecords output
// read from stream (name or ARN). Each decrypted record gets its plaintext
// Data and PartitionKey and EncryptionType KMS; a plaintext record passed
// through (AllowPlaintext) is left as is and marked EncryptionType NONE.
//
// A record that fails is left with nil Data, and DecryptRecords returns a
// *BatchError listing the failed records by index, with the reason of each;
// the other records are decrypted. Callers must check the error: a failed
// record never carries bytes that were not authenticated.
func (d *Decryptor) DecryptRecords(ctx context.Context, stream string, records []types.Record) error {
	b, err := d.bind.kinesisStream(stream)
	if err != nil {
		return err
	}
	var be *BatchError
	// keyErrs remembers, for this batch, the wrapped keys that KMS failed
	// to unwrap (throttling, an outage, a disabled key), so that the other
	// records under the same data key fail at once instead of each making
	// its own KMS call with retries.
	var keyErrs map[string]error
	for i := range records {
		r := &records[i]
		var wk []byte
		if envelope.IsEnvelope(r.Data) {
			if e, _, err := envelope.Parse(r.Data); err == nil {
				wk = e.WrappedKey
			}
		}
		dec, err := Decrypted{}, keyErrs[string(wk)]
		if err == nil {
			dec, err = d.decrypt(ctx, b, r.Data)
			if wk != nil && isKeyFailure(err) {
				if keyErrs == nil {
					keyErrs = make(map[string]error)
				}
				keyErrs[string(wk)] = err
			}
		}
		if err != nil {
			r.Data = nil
			if be == nil {
				be = &BatchError{Op: "DecryptRecords"}
			}
			be.Failed = append(be.Failed, RecordError{Index: i, Err: err})
			continue
		}
		if !dec.Encrypted {
			r.EncryptionType = types.EncryptionTypeNone
			continue
		}
		pk := dec.PartitionKey
		r.Data, r.PartitionKey, r.EncryptionType = dec.Data, &pk, types.EncryptionTypeKms
	}
	if be != nil {
		return be
	}
	return nil
}

// isKeyFailure reports whether err is a failure to obtain the data key (from
// KMS, strict mode, or the caller's context), which every record under the
// same wrapped key would meet too.
func isKeyFailure(err error) bool {
	var ke *kmsiface.Error
	return errors.As(err, &ke) || errors.Is(err, keycache.ErrNotAllowed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Stats returns the counters of the Decryptor's key cache.
func (d *Decryptor) Stats() keycache.Stats { return d.cache.Stats() }

// Close waits for KMS calls in flight and destroys the cached keys.
// Decrypt fails afterwards.
func (d *Decryptor) Close() error { return d.cache.Close() }
