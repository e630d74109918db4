package record

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/telemetry"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
)

// Decryptor decrypts records for the consuming side. Create one with
// [NewDecryptor] and share it; it is safe for concurrent use.
type Decryptor struct {
	cache *keycache.Consumer
	opts  DecryptorOptions
	bind  bindings
	tel   *telemetry.Telemetry // nil without providers
}

// NewDecryptor returns a Decryptor that unwraps data keys with
// client.Decrypt. It accepts only the data keys of the KMS keys named in
// DecryptorOptions.AllowedKeys, and fails without them, unless
// DecryptorOptions.InsecureAllowAnyKey is set:
//
//	dec, err := record.NewDecryptor(kms.NewFromConfig(cfg), func(o *record.DecryptorOptions) {
//		o.AllowedKeys = []string{"arn:aws:kms:us-east-1:111122223333:key/1234abcd-…"}
//	})
func NewDecryptor(client kmsiface.Decrypter, optFns ...func(*DecryptorOptions)) (*Decryptor, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil KMS client", ErrInvalidInput)
	}
	var o DecryptorOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	d := &Decryptor{opts: o}
	var co keycache.ConsumerOptions
	o.cacheOptions(&co)
	co.OnKMSCall = kmsCallHook(o.MeterProvider, o.TracerProvider, func() *telemetry.Telemetry { return d.tel })
	var err error
	if d.cache, err = keycache.NewConsumer(client, func(c *keycache.ConsumerOptions) { *c = co }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if d.tel, err = newTelemetry(o.MeterProvider, o.TracerProvider, "consumer", d.cache.Stats); err != nil {
		d.cache.Close()
		return nil, err
	}
	return d, nil
}

// TrustsAnyKey reports whether d was built with InsecureAllowAnyKey and no
// AllowedKeys.
func (d *Decryptor) TrustsAnyKey() bool { return len(d.opts.AllowedKeys) == 0 }

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
// or ARN). It never returns unauthenticated bytes. It fails with:
//
//   - envelope.ErrOpen for a record that is not authentic under the
//     stream, including a wrapped key that KMS refuses for the stream's
//     encryption context;
//   - ErrNotEncrypted for a plaintext record, unless AllowPlaintext is set:
//     then the record is returned as is, with Encrypted false;
//   - a *kmsiface.Error or keycache.ErrNotAllowed when the data key cannot
//     be unwrapped.
func (d *Decryptor) Decrypt(ctx context.Context, stream string, data []byte) (Decrypted, error) {
	b, err := d.bind.kinesisStream(stream)
	if err != nil {
		return Decrypted{}, err
	}
	dec, err := d.decrypt(ctx, b, data)
	countDecrypt(ctx, d.tel, b.kb.AD, err)
	return dec, err
}

func (d *Decryptor) decrypt(ctx context.Context, b *binding, data []byte) (Decrypted, error) {
	e, plain, err := d.parse(data)
	if err != nil {
		return Decrypted{}, err
	}
	if plain {
		return Decrypted{Data: data}, nil
	}
	// One buffer of the exact size for the partition key and payload; the
	// partition key string shares it, since nothing else can write there.
	out, n, arn, err := d.open(ctx, make([]byte, 0, openedSize(&e)), b, &e)
	if err != nil {
		return Decrypted{}, err
	}
	return Decrypted{PartitionKey: bytesString(out[:n]), Data: out[n:len(out):len(out)], Encrypted: true, KeyARN: arn}, nil
}

// parse parses data as one envelope. plain is true, with a nil error, for a
// plaintext record passed through (AllowPlaintext).
func (d *Decryptor) parse(data []byte) (e envelope.Envelope, plain bool, err error) {
	if !envelope.IsEnvelope(data) {
		if d.opts.AllowPlaintext {
			return e, true, nil
		}
		return e, false, ErrNotEncrypted
	}
	e, rest, err := envelope.Parse(data)
	if err != nil || len(rest) != 0 {
		return e, false, envelope.ErrOpen
	}
	return e, false, nil
}

// openedSize is the size of the partition key and payload of a parsed
// envelope, which Open appends.
func openedSize(e *envelope.Envelope) int {
	return max(0, len(e.Body)-2-envelope.NonceSize-envelope.TagSize)
}

// bytesString returns b as a string without a copy. The caller must own b
// and never write it again.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// DecryptAppend is Decrypt into a buffer of the caller's. It appends the
// partition key and payload to dst and returns the updated slice.
// dec.Data is the payload within it (capacity clipped), valid until the
// caller reuses that part of the buffer. dec.PartitionKey is a string of
// its own. The capacity of dst must not overlap data.
//
// On failure dst is returned unchanged. So is it for a plaintext record
// passed through (AllowPlaintext), which is not copied: dec.Data is data.
func (d *Decryptor) DecryptAppend(ctx context.Context, dst []byte, stream string, data []byte) (out []byte, dec Decrypted, err error) {
	b, err := d.bind.kinesisStream(stream)
	if err != nil {
		return dst, Decrypted{}, err
	}
	return d.decryptAppend(ctx, dst, b, data)
}

// DecryptFirehose is DecryptAppend for a record of the Firehose delivery
// stream deliveryStream (name or ARN).
func (d *Decryptor) DecryptFirehose(ctx context.Context, dst []byte, deliveryStream string, data []byte) (out []byte, dec Decrypted, err error) {
	b, err := d.bind.firehoseStream(deliveryStream)
	if err != nil {
		return dst, Decrypted{}, err
	}
	return d.decryptAppend(ctx, dst, b, data)
}

func (d *Decryptor) decryptAppend(ctx context.Context, dst []byte, b *binding, data []byte) (out []byte, dec Decrypted, err error) {
	e, plain, err := d.parse(data)
	switch {
	case plain:
		dec = Decrypted{Data: data}
	case err == nil:
		var n int
		var arn string
		out, n, arn, err = d.open(ctx, dst, b, &e)
		if err == nil {
			pt := out[len(dst):]
			dec = Decrypted{PartitionKey: string(pt[:n]), Data: pt[n:len(pt):len(pt)], Encrypted: true, KeyARN: arn}
		}
	}
	countDecrypt(ctx, d.tel, b.kb.AD, err)
	if err != nil {
		return dst, Decrypted{}, err
	}
	if plain {
		return dst, dec, nil
	}
	return out, dec, nil
}

func (d *Decryptor) open(ctx context.Context, dst []byte, b *binding, e *envelope.Envelope) ([]byte, int, string, error) {
	for attempt := 0; ; attempt++ {
		key, arn, err := d.unwrap(ctx, b, e.WrappedKey)
		if err != nil {
			return dst, 0, arn, err
		}
		out, n, err := key.Open(dst, e)
		if errors.Is(err, envelope.ErrKeyDestroyed) && attempt < 3 {
			continue // evicted while in use; unwrap again
		}
		return out, n, arn, err
	}
}

// unwrap returns the data key of wk for b, from the cache or KMS.
func (d *Decryptor) unwrap(ctx context.Context, b *binding, wk []byte) (*envelope.Key, string, error) {
	key, arn, err := d.cache.Key(ctx, wk, b.kb)
	return key, arn, authFailure(err)
}

// authFailure turns KMS refusing a wrapped key for the stream's context
// (tampered, or moved from another stream) into what it is to the caller:
// one more authentication failure.
func authFailure(err error) error {
	if errors.Is(err, kmsiface.ErrInvalidCiphertext) {
		return envelope.ErrOpen
	}
	return err
}

// DecryptBatch decrypts the records data of one stream (name or ARN), as
// Decrypt does each. out[i] is data[i] decrypted. It parses each record
// once, unwraps the distinct data keys of the batch concurrently, then
// opens the records in order. At most MaxNewKeysPerBatch of the keys may be
// new to the cache.
//
// A record that fails is left as the zero Decrypted in out. err is then a
// *BatchError that lists the failed records by index, each with its
// reason. [IsPermanent] tells the records that will never decrypt from
// those to retry. The one exception is an invalid stream: out is nil and
// err says why.
//
// The plaintexts share one buffer, allocated once for the batch: a Data
// kept keeps the whole batch's plaintext in memory.
func (d *Decryptor) DecryptBatch(ctx context.Context, stream string, data [][]byte) ([]Decrypted, error) {
	b, err := d.bind.kinesisStream(stream)
	if err != nil {
		return nil, err
	}
	if d.tel == nil {
		return d.decryptBatch(ctx, b, data)
	}
	ctx, end := d.tel.Span(ctx, "ksse.DecryptBatch", b.kb.AD, len(data))
	out, err := d.decryptBatch(ctx, b, data)
	failed := failedCount(len(data), err)
	end(failed)
	d.tel.Decrypted(ctx, b.kb.AD, len(data)-failed)
	if be, ok := err.(*BatchError); ok {
		for _, f := range be.Failed {
			countDecrypt(ctx, d.tel, b.kb.AD, f.Err)
		}
	}
	return out, err
}

func (d *Decryptor) decryptBatch(ctx context.Context, b *binding, data [][]byte) ([]Decrypted, error) {
	out := make([]Decrypted, len(data))
	envs := make([]envelope.Envelope, len(data))
	keyOf := make([]int, len(data)) // index in keys, or -1
	errs := make([]error, len(data))
	var keys []unwrapped
	seen := make(map[string]int)
	size := 0 // of every record's partition key and payload
	for i, p := range data {
		keyOf[i] = -1
		if !envelope.IsEnvelope(p) {
			if d.opts.AllowPlaintext {
				out[i] = Decrypted{Data: p}
			} else {
				errs[i] = ErrNotEncrypted
			}
			continue
		}
		e, rest, err := envelope.Parse(p)
		if err != nil || len(rest) != 0 {
			errs[i] = envelope.ErrOpen
			continue
		}
		envs[i] = e
		size += openedSize(&e)
		j, ok := seen[string(e.WrappedKey)]
		if !ok {
			j = len(keys)
			seen[string(e.WrappedKey)] = j
			keys = append(keys, unwrapped{wk: e.WrappedKey})
		}
		keyOf[i] = j
	}
	d.unwrapAll(ctx, b, keys)

	// One buffer for the batch's plaintexts: each record opens into its own
	// part, which its partition key string and Data share.
	buf := make([]byte, size)
	var be *BatchError
	for i := range data {
		if j := keyOf[i]; j >= 0 && errs[i] == nil {
			k := &keys[j]
			m := openedSize(&envs[i])
			dst := buf[:0:m]
			buf = buf[m:]
			if k.err != nil {
				errs[i] = k.err
			} else {
				pt, n, err := k.key.Open(dst, &envs[i])
				if errors.Is(err, envelope.ErrKeyDestroyed) {
					pt, n, _, err = d.open(ctx, dst, b, &envs[i])
				}
				if err == nil {
					out[i] = Decrypted{PartitionKey: bytesString(pt[:n]), Data: pt[n:len(pt):len(pt)], Encrypted: true, KeyARN: k.arn}
				}
				errs[i] = err
			}
		}
		if errs[i] != nil {
			if be == nil {
				be = &BatchError{Op: "DecryptBatch"}
			}
			be.Failed = append(be.Failed, RecordError{Index: i, Err: errs[i]})
		}
	}
	if be != nil {
		return out, be
	}
	return out, nil
}

// unwrapped is a distinct wrapped key of a batch, and its data key or
// error.
type unwrapped struct {
	wk  []byte
	key *envelope.Key
	arn string
	err error
}

// unwrapAll fills in keys: cached answers first, then at most
// MaxNewKeysPerBatch KMS calls, unwrapFanout at a time. The keys beyond the
// bound fail with keycache.ErrRateLimited.
func (d *Decryptor) unwrapAll(ctx context.Context, b *binding, keys []unwrapped) {
	var pending []*unwrapped
	for j := range keys {
		k := &keys[j]
		key, arn, err, ok := d.cache.Cached(k.wk, b.kb)
		if ok {
			k.key, k.arn, k.err = key, arn, authFailure(err)
			continue
		}
		if len(pending) == d.opts.MaxNewKeysPerBatch {
			k.err = fmt.Errorf("%w: more than %d new wrapped keys in one batch (MaxNewKeysPerBatch)", keycache.ErrRateLimited, d.opts.MaxNewKeysPerBatch)
			continue
		}
		pending = append(pending, k)
	}
	if len(pending) == 1 {
		k := pending[0]
		k.key, k.arn, k.err = d.unwrap(ctx, b, k.wk)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(unwrapFanout, len(pending)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(pending)) {
					return
				}
				k := pending[i]
				k.key, k.arn, k.err = d.unwrap(ctx, b, k.wk)
			}
		})
	}
	wg.Wait()
}

// DecryptRecords decrypts, in place, the records of a GetRecords output
// read from stream (name or ARN), as DecryptBatch does.
//
//   - A decrypted record gets its plaintext Data and PartitionKey, and
//     EncryptionType KMS.
//   - A plaintext record passed through (AllowPlaintext) is left as is,
//     with EncryptionType NONE.
//   - A record that fails is left with nil Data, and the error is a
//     *BatchError that lists the failed records by index, each with its
//     reason.
//
// Callers must check the error. A failed record never carries bytes that
// were not authenticated.
func (d *Decryptor) DecryptRecords(ctx context.Context, stream string, records []types.Record) error {
	data := make([][]byte, len(records))
	for i := range records {
		data[i] = records[i].Data
	}
	out, err := d.DecryptBatch(ctx, stream, data)
	if out == nil {
		return err
	}
	ApplyDecrypted(records, out, err)
	if be, ok := err.(*BatchError); ok {
		be.Op = "DecryptRecords"
	}
	return err
}

// ApplyDecrypted writes the results of DecryptBatch (out, err) into the
// records they came from: plaintext Data and PartitionKey and EncryptionType
// KMS for a decrypted record, EncryptionType NONE for a plaintext one passed
// through, and nil Data for a failed one.
func ApplyDecrypted(records []types.Record, out []Decrypted, err error) {
	var failed []bool
	if be, ok := err.(*BatchError); ok {
		failed = make([]bool, len(records))
		for _, f := range be.Failed {
			if f.Index >= 0 && f.Index < len(failed) {
				failed[f.Index] = true
			}
		}
	}
	var keys []string // the batch's partition keys, for their pointers
	for i := range records {
		r := &records[i]
		switch dec := out[i]; {
		case failed != nil && failed[i]:
			r.Data = nil
		case !dec.Encrypted:
			r.EncryptionType = types.EncryptionTypeNone
		default:
			if keys == nil {
				keys = make([]string, len(records))
			}
			keys[i] = dec.PartitionKey
			r.Data, r.PartitionKey, r.EncryptionType = dec.Data, &keys[i], types.EncryptionTypeKms
		}
	}
}

// IsPermanent reports whether err, the failure of one record, will recur on
// every retry. A consumer should set such a record aside rather than stop
// on it. A writer to the stream can cause each of these at will:
//
//   - not authentic ([envelope.ErrOpen]);
//   - not encrypted ([ErrNotEncrypted]);
//   - under a key not allowed ([keycache.ErrNotAllowed]);
//   - refused by KMS for access, key state, a missing key or key usage.
//
// Every other failure is transient: throttling, [keycache.ErrRateLimited],
// KMS 5xx and network errors, an ended context. Retry the record later.
func IsPermanent(err error) bool {
	return errors.Is(err, envelope.ErrOpen) || errors.Is(err, ErrNotEncrypted) || keycache.Permanent(err)
}

// Stats returns the counters of the Decryptor's key cache.
func (d *Decryptor) Stats() keycache.Stats { return d.cache.Stats() }

// Close waits for KMS calls in flight and destroys the cached keys.
// Decrypt fails afterwards.
func (d *Decryptor) Close() error {
	d.tel.Stop()
	return d.cache.Close()
}
