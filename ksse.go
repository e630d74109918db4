// Package ksse makes client-side Kinesis encryption transparent: one
// option on an aws-sdk-go-v2 Kinesis client, and the program's existing
// code reads and writes encrypted records.
//
//	keyARN := "arn:aws:kms:us-east-1:111122223333:key/1234abcd-…"
//	enc, _ := record.NewEncryptor(kms.NewFromConfig(cfg), keyARN)
//	dec, _ := record.NewDecryptor(kms.NewFromConfig(cfg), func(o *record.DecryptorOptions) {
//		o.AllowedKeys = []string{keyARN} // the keys whose records it trusts
//	})
//	client := kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec))
//
// With it, PutRecord and PutRecords encrypt each record. The partition key
// is hidden; an ExplicitHashKey computed from it keeps the record on the
// shard it would have gone to. GetRecords returns the records decrypted,
// with their plaintext partition keys and EncryptionType KMS, as if the
// stream had done it. Package record ([record.Encryptor],
// [record.Decryptor]) does the work and documents the keys and the format;
// this package only places it in the SDK's middleware stack.
//
// The Decryptor trusts only the KMS keys in AllowedKeys. GetRecords refuses
// a Decryptor built with InsecureAllowAnyKey, unless
// [Options].InsecureAllowAnyKey is set too.
//
// # Which stream a GetRecords call reads
//
// Records are bound to their stream, and a GetRecordsInput carries only a
// shard iterator. The stream is found, in order:
//   - in GetRecordsInput.StreamARN, when it is set;
//   - in the client's memory of the shard iterators it returned, from
//     GetShardIterator or as a NextShardIterator (see [MaxIterators]).
//
// Otherwise GetRecords fails with [ErrUnknownStream] before anything is
// sent. The stream is never guessed.
//
// # Failures
//
// Encryption fails closed. If a record of PutRecords cannot be encrypted,
// nothing is sent, and the error wraps a *record.BatchError.
//
// Records that Kinesis rejects are reported as the SDK reports them: in
// FailedRecordCount and the ErrorCode of each entry of
// PutRecordsOutput.Records, by index in the caller's input. Retry your own
// plaintext entries; they are encrypted again. A record that Kinesis did
// not acknowledge is marked there too, with ErrorCode "InternalFailure":
//   - a result without a sequence number;
//   - every record, when the number of results differs from the number of
//     records (a retry may then duplicate some).
//
// A record fails to decrypt either for good or for now:
//   - for good ([record.IsPermanent]): forged, tampered with, written for
//     another stream, not encrypted, or under a KMS key not allowed or
//     refused by KMS.
//   - for now: KMS throttling, the Decryptor's KMS rate limit, a KMS or
//     network error, an ended context.
//
// No bytes that failed authentication are ever returned.
//
// By default a failed record makes GetRecords return a *[GetRecordsError].
// Its Output has every other record decrypted and the failed ones with nil
// Data. To skip them, continue from Output.NextShardIterator.
//
// With [Options].OnReject set, GetRecords survives bad records. A record
// that fails for good is taken out of the output and passed to OnReject,
// and the call succeeds. A record that fails for now makes the call fail
// with a *GetRecordsError whose Output is nil, and nothing is rejected:
// retry the same call, with the same shard iterator, after a backoff (the
// iterator is valid for 5 minutes). So the usual loop reads on past forged
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
// data keys (default 128). A response with thousands of new data keys may
// then fail for now on every retry; a Limit on GetRecordsInput bounds that.
//
// [KeyARNs] gives the KMS key of each record returned.
//
// A misconfigured client fails before anything is sent, with an error
// wrapping record.ErrInvalidInput:
//   - PutRecord or PutRecords without an Encryptor;
//   - GetRecords without a Decryptor, or with one that trusts any key;
//   - SubscribeToShard, whose event stream a middleware cannot safely
//     rewrite. Call it on a client without the option, and decrypt its
//     events with [DecryptSubscribeToShardEvent].
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

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse/internal/stackopt"
	"github.com/ksse-go/ksse/record"
)

// ErrUnknownStream is returned by GetRecords, before anything is sent, when
// the stream of its shard iterator is not known: GetRecordsInput.StreamARN
// is not set, and the iterator did not come from GetShardIterator or
// GetRecords through a client with [WithEncryption], or was forgotten (see
// [MaxIterators]). Set StreamARN and retry.
var ErrUnknownStream = errors.New("ksse: GetRecords: unknown stream for this shard iterator; set GetRecordsInput.StreamARN or get the iterator with GetShardIterator through the same client")

// Configuration errors. Each wraps record.ErrInvalidInput and is returned
// before anything is sent.
var (
	errNoEncryptor      = fmt.Errorf("%w: nil Encryptor: refusing to send records in plaintext", record.ErrInvalidInput)
	errNoDecryptor      = fmt.Errorf("%w: nil Decryptor: refusing to return records undecrypted", record.ErrInvalidInput)
	errTrustsAnyKey     = fmt.Errorf("%w: the Decryptor trusts any KMS key (InsecureAllowAnyKey), so anyone who can write to the stream and use some KMS key could forge records; give it AllowedKeys, or set ksse.Options.InsecureAllowAnyKey as well", record.ErrInvalidInput)
	errSubscribeToShard = fmt.Errorf("%w: SubscribeToShard cannot be decrypted by WithEncryption; call it on a client without the option and decrypt each event with ksse.DecryptSubscribeToShardEvent", record.ErrInvalidInput)
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
	// record.DecryptorOptions.InsecureAllowAnyKey. Without it, such a
	// client's GetRecords fails before anything is sent.
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
// Either may be nil, for a client that only produces or only consumes. The
// operations that need the missing one then fail before sending anything,
// with an error wrapping record.ErrInvalidInput; so does SubscribeToShard.
// Options such as record.EncryptorOptions.KinesisOptions do not apply to
// calls through the client: configure the client instead.
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
		o.APIOptions = append(o.APIOptions, stackopt.Add(m))
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
// enhanced fan-out (SubscribeToShard) read from stream. stream is the
// stream's name or ARN, or the consumer ARN given to SubscribeToShard.
//
// It works as [record.Decryptor.DecryptRecords]: each record gets its
// plaintext Data and PartitionKey. A record that fails is left with nil
// Data, and the error is a *record.BatchError listing the failed records by
// index ([record.IsPermanent] tells which to skip and which to retry). The
// event's ContinuationSequenceNumber is untouched.
func DecryptSubscribeToShardEvent(ctx context.Context, dec *record.Decryptor, stream string, ev *types.SubscribeToShardEvent) error {
	if dec == nil {
		return errNoDecryptor
	}
	if ev == nil {
		return fmt.Errorf("%w: nil SubscribeToShardEvent", record.ErrInvalidInput)
	}
	return dec.DecryptRecords(ctx, stream, ev.Records)
}
