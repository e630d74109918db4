package record

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/telemetry"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
)

// Encryptor encrypts records for the producing side. Create one with
// [NewEncryptor] and share it; it is safe for concurrent use.
type Encryptor struct {
	cache *keycache.Producer
	desc  kmsiface.KeyDescriber // for SetKeyID and RoutingKey; nil if the client has no DescribeKey
	mac   kmsiface.MACGenerator // for RoutingKey
	keyID atomic.Pointer[string]
	opts  EncryptorOptions
	bind  bindings
	tel   *telemetry.Telemetry // nil without providers

	routingChecked atomic.Bool // RoutingKey found to be an HMAC_256 key

	switchMu sync.Mutex // serialises SetKeyID
}

// NewEncryptor returns an Encryptor that seals records under data keys of
// the KMS key keyID (key ID, key ARN, alias name or alias ARN), fetched with
// client.GenerateDataKey. The key is not contacted until the first record.
//
// The client needs only GenerateDataKey, with two exceptions:
//
//   - [Encryptor.SetKeyID] also needs DescribeKey.
//   - RoutingKey also needs DescribeKey and GenerateMac.
//
// *kms.Client has all three.
func NewEncryptor(client kmsiface.DataKeyGenerator, keyID string, optFns ...func(*EncryptorOptions)) (*Encryptor, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil KMS client", ErrInvalidInput)
	}
	if keyID == "" {
		return nil, fmt.Errorf("%w: empty KMS key ID", ErrInvalidInput)
	}
	var o EncryptorOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	desc, _ := client.(kmsiface.KeyDescriber)
	mac, _ := client.(kmsiface.MACGenerator)
	if o.RoutingKey != "" && (mac == nil || desc == nil) {
		return nil, fmt.Errorf("%w: RoutingKey needs a KMS client with GenerateMac and DescribeKey, such as *kms.Client", ErrInvalidInput)
	}
	e := &Encryptor{desc: desc, mac: mac, opts: o}
	var co keycache.ProducerOptions
	o.cacheOptions(&co)
	co.OnKMSCall = kmsCallHook(o.MeterProvider, o.TracerProvider, func() *telemetry.Telemetry { return e.tel })
	var err error
	if e.cache, err = keycache.NewProducer(client, func(c *keycache.ProducerOptions) { *c = co }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if e.tel, err = newTelemetry(o.MeterProvider, o.TracerProvider, "producer", e.cache.Stats); err != nil {
		e.cache.Close()
		return nil, err
	}
	e.keyID.Store(&keyID)
	return e, nil
}

// KeyID returns the KMS key that new data keys are generated under.
func (e *Encryptor) KeyID() string { return *e.keyID.Load() }

// Encrypted is an encrypted record as it goes on the wire.
type Encrypted struct {
	// Data is the envelope.
	Data []byte
	// PartitionKey is OutboundPartitionKey.
	PartitionKey string
	// ExplicitHashKey is the hash key of the plaintext partition key, in
	// decimal, which routes the record to the shard the plaintext record
	// would go to.
	ExplicitHashKey string
}

// Encrypt encrypts one record for stream (name or ARN). Before sealing it
// checks the stream name, the partition key (1 to 256 Unicode characters)
// and the encrypted size against MaxRecordSize. No plaintext is returned on
// failure.
func (e *Encryptor) Encrypt(ctx context.Context, stream, partitionKey string, data []byte) (Encrypted, error) {
	_, enc, err := e.EncryptAppend(ctx, nil, stream, partitionKey, data)
	return enc, err
}

// EncryptAppend is Encrypt into a buffer of the caller's. It appends the
// envelope to dst and returns the updated slice. enc.Data is the envelope
// within it (capacity clipped), valid until the caller reuses that part of
// the buffer. On failure dst is returned unchanged. The capacity of dst
// must not overlap data.
//
// With enough capacity in dst it allocates only ExplicitHashKey and the
// record key's cipher.
func (e *Encryptor) EncryptAppend(ctx context.Context, dst []byte, stream, partitionKey string, data []byte) (out []byte, enc Encrypted, err error) {
	b, err := e.bind.kinesisStream(stream)
	if err != nil {
		return dst, Encrypted{}, err
	}
	if err := checkPartitionKey(partitionKey); err != nil {
		return dst, Encrypted{}, err
	}
	var buf [39]byte
	ehk, err := e.appendHashKey(ctx, buf[:0], b, partitionKey)
	if err != nil {
		return dst, Encrypted{}, err
	}
	out, err = e.seal(ctx, dst, b, partitionKey, data, len(OutboundPartitionKey), sealReserve{})
	if err != nil {
		return dst, Encrypted{}, err
	}
	e.tel.Encrypted(ctx, b.kb.AD, 1)
	return out, Encrypted{
		Data:            out[len(dst):len(out):len(out)],
		PartitionKey:    OutboundPartitionKey,
		ExplicitHashKey: string(ehk),
	}, nil
}

// EncryptFirehose is EncryptAppend for a record of the Firehose delivery
// stream deliveryStream (name or ARN). Firehose records have no partition
// key: it appends the envelope of data alone to dst and returns the updated
// slice. On failure it returns dst unchanged.
func (e *Encryptor) EncryptFirehose(ctx context.Context, dst []byte, deliveryStream string, data []byte) ([]byte, error) {
	b, err := e.bind.firehoseStream(deliveryStream)
	if err != nil {
		return dst, err
	}
	out, err := e.seal(ctx, dst, b, "", data, 0, sealReserve{})
	if err != nil {
		return dst, err
	}
	e.tel.Encrypted(ctx, b.kb.AD, 1)
	return out, nil
}

// seal appends the envelope of one record to dst. If dst lacks the room, it
// allocates a new buffer with spare capacity for reserve more bytes, where
// reserve is what later records of a batch need beyond their wrapped keys:
// reserve.bytes plus reserve.records envelopes' overhead and wrapped key.
func (e *Encryptor) seal(ctx context.Context, dst []byte, b *binding, partitionKey string, data []byte, overhead int, reserve sealReserve) ([]byte, error) {
	// Check the size once before any KMS call and once after, with the
	// actual wrapped key.
	if err := e.checkSize(partitionKey, data, overhead); err != nil {
		return dst, err
	}
	for attempt := 0; ; attempt++ {
		key, err := e.cache.Key(ctx, *e.keyID.Load(), b.kb, len(data))
		if err != nil {
			return dst, err
		}
		sealed := key.SealedSize(len(partitionKey), len(data))
		if size := sealed + overhead; size > e.opts.MaxRecordSize {
			return dst, fmt.Errorf("%w: %d bytes encrypted, limit %d", ErrRecordTooLarge, size, e.opts.MaxRecordSize)
		}
		if cap(dst)-len(dst) < sealed {
			more := sealed
			if reserve.records > 0 {
				more += reserve.bytes + reserve.records*key.SealedSize(0, 0)
			}
			dst = append(make([]byte, 0, len(dst)+more), dst...)
		}
		// Key.Seal only reads the partition key: no copy of it.
		out, err := key.Seal(dst, unsafe.Slice(unsafe.StringData(partitionKey), len(partitionKey)), data)
		if errors.Is(err, envelope.ErrKeyDestroyed) && attempt < 3 {
			continue // replaced while in use; take the new one
		}
		return out, err
	}
}

// sealReserve is the room that the records of a batch after the current one
// need, less their wrapped keys, which are known only with the data key.
type sealReserve struct {
	bytes   int // partition keys and payloads
	records int
}

// checkSize checks a record before its data key is known:
//
//   - against MaxRecordSize, counting the smallest wrapped key (one byte);
//   - its payload against MaxBytesPerKey, which no data key could seal.
//     The key cache would refuse such a record with an error of its own;
//     this check gives callers ErrRecordTooLarge before any KMS call.
func (e *Encryptor) checkSize(partitionKey string, data []byte, overhead int) error {
	if size := envelope.Overhead + len(partitionKey) + len(data) + 1 + overhead; size > e.opts.MaxRecordSize {
		return fmt.Errorf("%w: %d bytes encrypted, limit %d", ErrRecordTooLarge, size, e.opts.MaxRecordSize)
	}
	if limit := e.opts.MaxBytesPerKey; limit > 0 && uint64(len(data)) > limit {
		return fmt.Errorf("%w: %d bytes of payload, MaxBytesPerKey %d", ErrRecordTooLarge, len(data), limit)
	}
	return nil
}

// Stats returns the counters of the Encryptor's key cache.
func (e *Encryptor) Stats() keycache.Stats { return e.cache.Stats() }

// Close stops the background key refreshes, waits for KMS calls in flight
// and destroys the cached keys. Encrypt fails afterwards.
func (e *Encryptor) Close() error {
	e.tel.Stop()
	return e.cache.Close()
}

// checkPartitionKey applies the Kinesis rule: 1 to 256 Unicode characters.
func checkPartitionKey(pk string) error {
	if pk == "" {
		return fmt.Errorf("%w: invalid partition key: empty", ErrInvalidInput)
	}
	if !utf8.ValidString(pk) {
		return fmt.Errorf("%w: invalid partition key: not valid UTF-8", ErrInvalidInput)
	}
	if n := utf8.RuneCountInString(pk); n > MaxPartitionKeyLength {
		return fmt.Errorf("%w: invalid partition key: %d characters, more than %d", ErrInvalidInput, n, MaxPartitionKeyLength)
	}
	return nil
}

// binding is a parsed stream and its key cache binding.
type binding struct {
	s     stream
	kb    keycache.Binding
	route route // keyed routing (Encryptor with RoutingKey)
}

// bindings caches the binding of each stream seen, by name or ARN as the
// caller gave it, so that the hot path neither parses nor allocates.
type bindings struct {
	kinesis, firehose sync.Map // string → *binding
	streams           sync.Map // stream → *binding
	n                 atomic.Int64
}

// maxBindings bounds the stream names and ARNs an Encryptor or Decryptor
// remembers parsed; past it, it forgets them all and starts again.
const maxBindings = 4096

// kinesisStream returns the binding of a Kinesis stream name or ARN.
func (bs *bindings) kinesisStream(stream string) (*binding, error) {
	return bs.get(&bs.kinesis, stream, kinesisID)
}

// firehoseStream returns the binding of a Firehose stream name or ARN.
func (bs *bindings) firehoseStream(stream string) (*binding, error) {
	return bs.get(&bs.firehose, stream, firehoseID)
}

func (bs *bindings) get(m *sync.Map, stream string, parse func(string) (stream, error)) (*binding, error) {
	if b, ok := m.Load(stream); ok {
		return b.(*binding), nil
	}
	s, err := parse(stream)
	if err != nil {
		return nil, err
	}
	b := bs.of(s)
	bs.added()
	m.Store(stream, b)
	return b, nil
}

// added counts one more entry about to be stored, forgetting every entry
// first if there are maxBindings already (concurrent callers may overshoot
// by their number).
func (bs *bindings) added() {
	if bs.n.Add(1) > maxBindings {
		bs.kinesis.Clear()
		bs.firehose.Clear()
		bs.streams.Clear()
		bs.n.Store(1)
	}
}

func (bs *bindings) of(s stream) *binding {
	if b, ok := bs.streams.Load(s); ok {
		return b.(*binding)
	}
	b := &binding{s: s, kb: keycache.Binding{Context: s.EncryptionContext(), AD: s.String()}}
	bs.added()
	v, _ := bs.streams.LoadOrStore(s, b)
	return v.(*binding)
}
