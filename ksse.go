// Package ksse makes client-side Kinesis encryption transparent: it is the
// entry point for programs that want their existing aws-sdk-go-v2 Kinesis
// code to read and write encrypted records without changing it.
//
// One option on the client turns encryption on:
//
//	keyARN := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-…"
//	enc, _ := record.NewEncryptor(kms.NewFromConfig(cfg), keyARN)
//	dec, _ := record.NewDecryptor(kms.NewFromConfig(cfg), func(o *record.DecryptorOptions) {
//		o.AllowedKeys = []string{keyARN} // the keys whose records it trusts
//	})
//	client := kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec))
//
// With it, PutRecord and PutRecords encrypt each record (the partition key
// is hidden, and an ExplicitHashKey computed from the plaintext partition
// key keeps the record on the shard it would have gone to), and GetRecords
// returns the records decrypted, with their plaintext partition keys and
// EncryptionType KMS, as if the stream had done it. Nothing else in the
// program changes. The work is done by package record ([record.Encryptor],
// [record.Decryptor]), whose documentation describes the keys and the
// format; this package only places it in the SDK's middleware stack.
//
// The Decryptor trusts only the KMS keys in AllowedKeys, named by key ARN.
// A Decryptor built with InsecureAllowAnyKey is refused by GetRecords
// ([ErrDecryptorTrustsAnyKey]) unless [Options].InsecureAllowAnyKey is set
// too.
//
// # Which stream a GetRecords call reads
//
// Records are bound to their stream, so decrypting needs the stream's name,
// and a GetRecordsInput carries only a shard iterator. The stream is taken
// from GetRecordsInput.StreamARN when it is set. Otherwise the client
// remembers, for each shard iterator returned by GetShardIterator or as a
// NextShardIterator by GetRecords through a client with this option, the
// stream it belongs to (see [MaxIterators]). A GetRecords call whose stream
// is known neither way fails with [ErrUnknownStream] before anything is
// sent: the stream is never guessed.
//
// # Failures
//
// Encryption fails closed: if any record of a PutRecords call cannot be
// encrypted (an invalid partition key, a record too large once encrypted, a
// KMS error), nothing is sent and the call returns an error wrapping a
// *record.BatchError. Records that Kinesis rejects are reported as usual,
// in PutRecordsOutput.FailedRecordCount and the ErrorCode of each entry of
// PutRecordsOutput.Records, which correspond by index to the caller's input:
// the caller retries its own plaintext entries, which are re-encrypted. A
// result that Kinesis returned without a sequence number is marked there
// too, with ErrorCode "InternalFailure", so that nothing counts as sent that
// Kinesis did not acknowledge; so is every record of a response whose
// number of results differs from the number of records, since its results
// cannot be matched to records (a retry may then duplicate some).
//
// A record fails to decrypt either for good or for now. For good
// ([record.IsPermanent]): it is forged, tampered with, written for another
// stream, not encrypted, or under a KMS key not allowed or refused by KMS.
// For now: KMS throttling, the Decryptor's KMS rate limit, a KMS or network
// error, an ended context. No bytes that failed authentication are ever
// returned.
//
// By default a failed record makes GetRecords return an error: a
// *[GetRecordsError], which carries the output with every other record
// decrypted and the failed ones with nil Data, and which wraps the
// *record.BatchError listing them. A caller that chooses to skip them
// continues from the output's NextShardIterator.
//
// With [Options].OnReject set, GetRecords survives bad records. A record
// that fails for good is taken out of the output and passed to OnReject;
// the call succeeds. A record that fails for now makes the call fail with a
// *GetRecordsError whose Output is nil; no record is rejected then. Retry
// the same call, with the same shard iterator, after a backoff; the
// iterator is valid for 5 minutes. So the usual loop reads on past forged
// and plaintext records, and loses nothing:
//
//	for {
//		out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it})
//		if err != nil {
//			return err // or back off and retry with the same it
//		}
//		process(out.Records)
//		it = out.NextShardIterator
//	}
//
// One call unwraps at most record.DecryptorOptions.MaxNewKeysPerBatch new
// data keys (default 128), within the Decryptor's KMS rate limit. A
// response with thousands of distinct new data keys may then fail for now
// on every retry; a Limit on GetRecordsInput bounds that.
//
// [KeyARNs] gives the KMS key of each record returned.
//
// Enhanced fan-out (SubscribeToShard) delivers records through an event
// stream that a middleware cannot safely rewrite: SubscribeToShard through
// a client with the option fails with [ErrSubscribeToShard] before
// anything is sent. Call it on a client without the option, and decrypt
// its events with [DecryptSubscribeToShardEvent].
//
// Every request of a client with the option carries the user-agent marker
// "ksse/VERSION".
//
// # Concurrency
//
// A client with the option is safe for concurrent use, as the SDK's client
// is. The Encryptor and Decryptor may be shared with other clients and code.
package ksse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse/record"
)

var (
	// ErrUnknownStream is returned by GetRecords when the stream of its shard
	// iterator is not known: the iterator did not come from GetShardIterator
	// or GetRecords through a client with [WithEncryption] (or was forgotten,
	// see [MaxIterators]), and GetRecordsInput.StreamARN is not set.
	ErrUnknownStream = errors.New("ksse: GetRecords: unknown stream for this shard iterator; set GetRecordsInput.StreamARN or get the iterator with GetShardIterator through the same client")

	// ErrNoEncryptor is returned by PutRecord and PutRecords on a client
	// configured with a nil Encryptor: nothing is sent in plaintext.
	ErrNoEncryptor = errors.New("ksse: no Encryptor configured: refusing to send records in plaintext")

	// ErrNoDecryptor is returned by GetRecords on a client configured with a
	// nil Decryptor: records are not returned undecrypted.
	ErrNoDecryptor = errors.New("ksse: no Decryptor configured: refusing to return records undecrypted")

	// ErrDecryptorTrustsAnyKey is returned by GetRecords, before anything is
	// sent, on a client whose Decryptor was built with
	// record.DecryptorOptions.InsecureAllowAnyKey, unless
	// [Options].InsecureAllowAnyKey is set too.
	ErrDecryptorTrustsAnyKey = errors.New("ksse: GetRecords: the Decryptor trusts any KMS key (InsecureAllowAnyKey), so anyone who can write to the stream and use some KMS key could forge records; give it AllowedKeys, or set ksse.Options.InsecureAllowAnyKey as well")

	// ErrSubscribeToShard is returned by SubscribeToShard, before anything
	// is sent, on a client with [WithEncryption]: the middleware cannot
	// decrypt an event stream.
	ErrSubscribeToShard = errors.New("ksse: SubscribeToShard cannot be decrypted by WithEncryption; call it on a client without the option and decrypt each event with ksse.DecryptSubscribeToShardEvent")
)

// MaxIterators is how many shard iterators a client with [WithEncryption]
// remembers the stream of. The oldest are forgotten first. A consumer
// uses one iterator per shard at a time, so this bounds the number of
// shards one client can read at once without GetRecordsInput.StreamARN to
// about half of it.
const MaxIterators = 1 << 14

// Options configure [WithEncryption].
type Options struct {
	// InsecureAllowAnyKey lets GetRecords use a Decryptor built with
	// record.DecryptorOptions.InsecureAllowAnyKey. Without it such a
	// client's GetRecords fails with [ErrDecryptorTrustsAnyKey].
	InsecureAllowAnyKey bool

	// OnReject, when set, makes GetRecords take the records that will never
	// decrypt out of its output and pass them here, instead of failing (see
	// the package documentation). It is called during GetRecords, in the
	// order of the records, before the call returns, and only for a call
	// that succeeds. Without it, a failed record makes GetRecords return a
	// *[GetRecordsError].
	OnReject func(ctx context.Context, r Rejected)
}

// Rejected is a record that GetRecords took out of its output because it
// will never decrypt.
type Rejected struct {
	// Stream is the stream it was read from: the GetRecordsInput.StreamARN,
	// or the stream named to GetShardIterator.
	Stream string
	// Record is the record as read: Data is the ciphertext (or whatever
	// was written), PartitionKey the one on the wire. Log its
	// SequenceNumber, not its content.
	Record types.Record
	// Err is why: record.IsPermanent(Err) is true.
	Err error
}

// WithEncryption returns a client option that makes a Kinesis client
// encrypt the records of PutRecord and PutRecords with enc and decrypt those
// of GetRecords with dec, as the package documentation describes:
//
//	client := kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec))
//
// Either may be nil for a client that only produces or only consumes; the
// operations that need the missing one then fail with [ErrNoEncryptor] or
// [ErrNoDecryptor] before sending anything. SubscribeToShard fails with
// [ErrSubscribeToShard]. The option also adds the "ksse/VERSION" user-agent
// marker. Options such as record.EncryptorOptions.KinesisOptions do not
// apply to calls made through the client: configure the client instead.
//
// Give the option once, to the client (or to one call): the client's
// memory of shard iterators belongs to the returned option.
func WithEncryption(enc *record.Encryptor, dec *record.Decryptor, optFns ...func(*Options)) func(*kinesis.Options) {
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	m := &transparent{enc: enc, dec: dec, opts: o, iterators: newIteratorStreams(MaxIterators)}
	return func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, m.addTo)
	}
}

// GetRecordsError is the error of a GetRecords call through a client with
// [WithEncryption] when records fail to decrypt. The error wraps Err, so
// errors.As finds the *record.BatchError, and errors.Is matches the reason
// of each record (envelope.ErrOpen, a KMS error class, …).
//
// Without [Options].OnReject, Output is the response with every other
// record decrypted; the failed records are in place, with nil Data, and Err
// lists them all by index. With OnReject, the error means a transient
// failure: Output is nil, Err lists the records that failed for now, and
// the call is to be retried with the same shard iterator.
type GetRecordsError struct {
	// Output is the GetRecords response, decrypted but for the failed
	// records, which have nil Data; nil with OnReject.
	Output *kinesis.GetRecordsOutput
	// Err lists the failed records by index in the response, with the
	// reason of each.
	Err *record.BatchError
}

// Error names the operation and the failed records.
func (e *GetRecordsError) Error() string { return "ksse: GetRecords: " + e.Err.Error() }

// Unwrap returns Err.
func (e *GetRecordsError) Unwrap() error { return e.Err }

// DecryptSubscribeToShardEvent decrypts in place the records of an event of
// enhanced fan-out (SubscribeToShard) read from stream, which may be the
// stream's name or ARN, or the consumer ARN given to SubscribeToShard
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CONSUMER:TIMESTAMP).
//
// As [record.Decryptor.DecryptRecords] does, each record gets its plaintext
// Data and PartitionKey; a record that fails is left with nil Data and the
// error is a *record.BatchError listing the failed records by index, with
// the reason of each ([record.IsPermanent] tells a record to skip from one
// to retry). The distinct data keys of the event are unwrapped
// concurrently. The event's ContinuationSequenceNumber is untouched.
func DecryptSubscribeToShardEvent(ctx context.Context, dec *record.Decryptor, stream string, ev *types.SubscribeToShardEvent) error {
	if dec == nil {
		return ErrNoDecryptor
	}
	if ev == nil {
		return fmt.Errorf("%w: nil SubscribeToShardEvent", record.ErrInvalidInput)
	}
	return dec.DecryptRecords(ctx, streamOfConsumer(stream), ev.Records)
}

// streamOfConsumer returns the stream ARN of a consumer ARN, and any other
// string as is.
func streamOfConsumer(s string) string {
	if strings.HasPrefix(s, "arn:") {
		if i := strings.Index(s, "/consumer/"); i >= 0 {
			return s[:i]
		}
	}
	return s
}
