// Package ksse makes client-side Kinesis encryption transparent: it is the
// entry point for programs that want their existing aws-sdk-go-v2 Kinesis
// code to read and write encrypted records without changing it.
//
// One option on the client turns encryption on:
//
//	enc, _ := record.NewEncryptor(kms.NewFromConfig(cfg), "alias/orders")
//	dec, _ := record.NewDecryptor(kms.NewFromConfig(cfg))
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
// A record that fails to decrypt (not authentic, or its data key refused by
// KMS) makes GetRecords return an error: a *[GetRecordsError], which carries
// the output with every other record decrypted and the failed ones with nil
// Data, and which wraps the *record.BatchError listing them. A caller that
// chooses to skip them continues from the output's NextShardIterator. No
// bytes that failed authentication are ever returned.
//
// Enhanced fan-out (SubscribeToShard) delivers records through an event
// stream that a middleware cannot safely rewrite; decrypt its events with
// [DecryptSubscribeToShardEvent].
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
)

// MaxIterators is how many shard iterators a client with [WithEncryption]
// remembers the stream of. The oldest are forgotten first. A consumer
// uses one iterator per shard at a time, so this bounds the number of
// shards one client can read at once without GetRecordsInput.StreamARN to
// about half of it.
const MaxIterators = 1 << 14

// WithEncryption returns a client option that makes a Kinesis client
// encrypt the records of PutRecord and PutRecords with enc and decrypt those
// of GetRecords with dec, as the package documentation describes:
//
//	client := kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec))
//
// Either may be nil for a client that only produces or only consumes; the
// operations that need the missing one then fail with [ErrNoEncryptor] or
// [ErrNoDecryptor] before sending anything. The option also adds the
// "ksse/VERSION" user-agent marker. Options such as record.Options.KinesisOptions
// do not apply to calls made through the client: configure the client
// instead.
//
// Give the option once, to the client (or to one call): the client's
// memory of shard iterators belongs to the returned option.
func WithEncryption(enc *record.Encryptor, dec *record.Decryptor) func(*kinesis.Options) {
	m := &transparent{enc: enc, dec: dec, iterators: newIteratorStreams(MaxIterators)}
	return func(o *kinesis.Options) {
		o.APIOptions = append(o.APIOptions, m.addTo)
	}
}

// GetRecordsError is the error of a GetRecords call through a client with
// [WithEncryption] when some records fail to decrypt. Output is the
// response with every other record decrypted; the failed records are in
// place, with nil Data, and are listed by index in Err. The error wraps Err,
// so errors.As finds the *record.BatchError, and errors.Is matches the
// reason of each record (envelope.ErrOpen, a KMS error class, …).
type GetRecordsError struct {
	// Output is the GetRecords response, decrypted but for the failed
	// records, which have nil Data.
	Output *kinesis.GetRecordsOutput
	// Err lists the failed records by index, with the reason of each.
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
// error is a *record.BatchError listing the failed records by index. The
// event's ContinuationSequenceNumber is untouched.
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
