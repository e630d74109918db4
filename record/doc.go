// Package record encrypts and decrypts Kinesis records with ksse envelopes:
// the client-side counterpart of Kinesis server-side encryption.
//
// An [Encryptor] turns a plaintext record (stream, partition key, payload)
// into what goes on the wire:
//
//   - Data: an envelope.
//   - PartitionKey: [OutboundPartitionKey], which reveals nothing.
//   - ExplicitHashKey: the hash key of the plaintext partition key, so
//     records land on the same shard, in the same order, as in plaintext.
//
// [Encryptor.PutRecords] and [Encryptor.PutRecord] wrap the calls of a
// *kinesis.Client.
//
// A [Decryptor] reverses it: [Decryptor.Decrypt] for one record's Data,
// [Decryptor.DecryptRecords] for the records of a GetRecords output, in
// place.
//
// Data keys come from KMS GenerateDataKey, with the encryption context
// {"kinesis:stream": NAME}. Package keycache caches them: one KMS call per
// TTL (5 minutes) on the producer, one per distinct wrapped key on the
// consumer.
//
// A Decryptor trusts only the KMS keys in [DecryptorOptions].AllowedKeys.
// A multi-Region key's ARN also names its replicas. Records forged by a
// writer to the stream can neither bill nor stall a consumer:
//
//   - a record that will never decrypt ([IsPermanent]) costs at most one
//     KMS call a minute;
//   - KMS calls on cache misses are rate limited.
//
// # Routing
//
// The ExplicitHashKey is the MD5 of the plaintext partition key, as Kinesis
// computes it, so anyone can test a guessed partition key against it. With
// [EncryptorOptions].RoutingKey, an HMAC_256 KMS key, it is instead an HMAC
// of the partition key under a secret of the stream. Only holders of the
// key can compute it. Records of a partition key still share a shard and
// their order, but not the shard of their plaintext twins.
//
// # Errors
//
// Caller mistakes are reported before anything is sent and before any KMS
// call. They match [ErrInvalidInput] (an invalid stream name or partition
// key, a nil input) or [ErrRecordTooLarge] with errors.Is. Other failures:
//
//   - A failed KMS call is a *kmsiface.Error, which matches a class of
//     package kmsiface (ErrKeyDisabled, ErrThrottling, …).
//   - A record that is not authentic is [envelope.ErrOpen].
//   - A plaintext record, on a consumer that does not allow plaintext, is
//     [ErrNotEncrypted].
//
// # Metrics
//
// With a MeterProvider (EncryptorOptions, DecryptorOptions), ksse records
// these instruments, of scope "github.com/ksse-go/ksse":
//
//   - ksse.records.encrypted, ksse.records.decrypted: records, by ksse.stream
//     (the stream identity, such as "kinesis:orders").
//   - ksse.records.rejected: records that will never decrypt ([IsPermanent]),
//     by ksse.stream and ksse.reason: not_authentic, not_encrypted,
//     key_not_allowed or kms_refused.
//   - ksse.records.failed: records that failed for now, by ksse.stream.
//   - ksse.cache.hits, ksse.cache.misses: key cache lookups, by ksse.side
//     (producer or consumer).
//   - ksse.kms.calls: KMS calls, by kms.operation and ksse.result: "ok", or
//     KMSKeyAccessDenied, KMSKeyDisabled, KMSKeyInvalidState,
//     KMSKeyNotFound (Firehose's names), KMSThrottling, KMSOptInRequired,
//     KMSInvalidKey, KMSInvalidCiphertext, KMSNotAllowed, KMSOther.
//   - ksse.kms.duration: seconds per KMS call, by kms.operation.
//
// No attribute holds key material or record content. Plug OpenTelemetry in
// with smithy-go's smithyotelmetrics and smithyoteltracing adapters, as for
// the SDK's clients.
//
// A TracerProvider gets the spans ksse.PutRecords (Encryptor.PutRecords)
// and ksse.DecryptBatch, with ksse.stream, ksse.records and ksse.failed. Without providers nothing is
// recorded and nothing is allocated.
//
// # Other languages
//
// Python and Node packages read and write the same records, with the same
// consumer policy: python/ and js/ in the repository
// (https://github.com/ksse-go/ksse/tree/main/python and …/js). FORMAT.md
// specifies the envelope and its test vectors.
//
// # Concurrency
//
// Encryptor and Decryptor are safe for concurrent use by multiple
// goroutines. Share them: each holds the key cache of the program. Their
// options must not change after construction. Close stops their background
// work.
package record
