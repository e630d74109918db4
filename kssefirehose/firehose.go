// Package kssefirehose encrypts records sent to an Amazon Data Firehose
// delivery stream (Direct PUT), and decrypts what Firehose delivered. It is
// the client-side counterpart of Firehose server-side encryption, with the
// envelopes of package record (see FORMAT.md).
//
// The package is named kssefirehose, not firehose, so that programs can
// import it next to github.com/aws/aws-sdk-go-v2/service/firehose.
//
// # Sending
//
// Give a Firehose client the option [WithEncryption], and PutRecord and
// PutRecordBatch encrypt each record:
//
//	client := firehose.NewFromConfig(cfg, kssefirehose.WithEncryption(enc))
//
// [PutRecord] and [PutRecordBatch] do the same as functions. Each record's
// Data becomes an envelope bound to the delivery stream: its name is the
// envelope's associated data, and the KMS encryption context is
// {"firehose:deliverystream": NAME}. Firehose records have no partition
// key.
//
// The Firehose limits apply to the encrypted records, before anything is
// sent and before any KMS call: [MaxRecordSize] per record,
// [MaxBatchRecords] records and [MaxBatchSize] bytes per batch.
//
// # Reading what Firehose delivered
//
// Firehose writes the records of a delivery one after the other, with
// nothing between them, to its destination (an S3 object, for example).
// Envelopes delimit themselves, so a [Reader] splits such an object, from
// any io.Reader and with bounded memory, and decrypts each record. A record
// that fails authentication is an error; none of its bytes are returned.
//
// Records must reach the destination as sent: no Lambda processor, no
// record format conversion, no delimiter appended.
//
// # Concurrency
//
// The functions are safe for concurrent use, as the Encryptor and
// Decryptor they use are. A [Reader] is for one goroutine at a time.
package kssefirehose

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/streamid"
	"github.com/ksse-go/ksse/record"
)

// Firehose limits, applied to encrypted records.
const (
	// MaxRecordSize is the largest record Firehose accepts, 1,000 KiB,
	// before base64 encoding. An envelope adds envelope.Overhead and the
	// wrapped key (about 240 bytes with AWS KMS) to the payload.
	MaxRecordSize = 1000 << 10
	// MaxBatchRecords is the most records one PutRecordBatch call takes.
	MaxBatchRecords = 500
	// MaxBatchSize is the largest PutRecordBatch request, 4 MiB of record
	// data.
	MaxBatchSize = 4 << 20
)

// PutRecordAPI is the part of *firehose.Client that PutRecord calls.
type PutRecordAPI interface {
	PutRecord(ctx context.Context, params *firehose.PutRecordInput, optFns ...func(*firehose.Options)) (*firehose.PutRecordOutput, error)
}

// PutRecordBatchAPI is the part of *firehose.Client that PutRecordBatch
// calls.
type PutRecordBatchAPI interface {
	PutRecordBatch(ctx context.Context, params *firehose.PutRecordBatchInput, optFns ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error)
}

var (
	_ PutRecordAPI      = (*firehose.Client)(nil)
	_ PutRecordBatchAPI = (*firehose.Client)(nil)
)

// Encrypt returns the envelope of data for the delivery stream
// deliveryStream (name or ARN), to send as a Firehose record's Data. An
// envelope over [MaxRecordSize] fails with an error matching
// record.ErrRecordTooLarge, before any KMS call.
func Encrypt(ctx context.Context, enc *record.Encryptor, deliveryStream string, data []byte) ([]byte, error) {
	if enc == nil {
		return nil, errNilEncryptor
	}
	// A wrapped key is at least one byte: check before the KMS call, and
	// again with the actual size.
	if n := envelope.Overhead + len(data) + 1; n > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes encrypted, Firehose limit %d", record.ErrRecordTooLarge, n, MaxRecordSize)
	}
	env, err := enc.EncryptFirehose(ctx, nil, deliveryStream, data)
	if err != nil {
		return nil, err
	}
	if len(env) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes encrypted, Firehose limit %d", record.ErrRecordTooLarge, len(env), MaxRecordSize)
	}
	return env, nil
}

var errNilEncryptor = fmt.Errorf("%w: nil Encryptor: refusing to send records in plaintext", record.ErrInvalidInput)

// PutRecord encrypts in.Record and sends it with client.PutRecord to the
// delivery stream in.DeliveryStreamName. The caller's input is not modified.
// Nothing is sent if encryption fails.
func PutRecord(ctx context.Context, enc *record.Encryptor, client PutRecordAPI, in *firehose.PutRecordInput, optFns ...func(*firehose.Options)) (*firehose.PutRecordOutput, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", record.ErrInvalidInput)
	}
	req, err := encryptRecord(ctx, enc, in)
	if err != nil {
		return nil, err
	}
	return client.PutRecord(ctx, req, optFns...)
}

// encryptRecord returns a copy of in with its record encrypted.
func encryptRecord(ctx context.Context, enc *record.Encryptor, in *firehose.PutRecordInput) (*firehose.PutRecordInput, error) {
	if in == nil || in.Record == nil {
		return nil, fmt.Errorf("%w: nil input or record", record.ErrInvalidInput)
	}
	env, err := Encrypt(ctx, enc, aws.ToString(in.DeliveryStreamName), in.Record.Data)
	if err != nil {
		return nil, err
	}
	req := *in
	req.Record = &types.Record{Data: env}
	return &req, nil
}

// PutRecordBatch encrypts every record of in and sends them with one
// PutRecordBatch call of client to the delivery stream
// in.DeliveryStreamName. The caller's input is not modified.
//
// A batch is sent whole or not at all. Nothing is sent if:
//   - it has more than [MaxBatchRecords] records (record.ErrInvalidInput),
//     or more than [MaxBatchSize] bytes once encrypted
//     (record.ErrRecordTooLarge);
//   - a record fails to encrypt: the error is a *record.BatchError, that
//     record with its reason, the others with record.ErrNotSent.
//
// If Firehose does not acknowledge some records, PutRecordBatch returns its
// output and a *record.BatchError listing them by index in in.Records,
// each with a *record.ServiceError (see record.Unacknowledged). Retry those
// of your plaintext records. An error of the call itself is returned as
// is, with a nil output.
func PutRecordBatch(ctx context.Context, enc *record.Encryptor, client PutRecordBatchAPI, in *firehose.PutRecordBatchInput, optFns ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client", record.ErrInvalidInput)
	}
	req, err := encryptBatch(ctx, enc, in)
	if err != nil {
		return nil, err
	}
	out, err := client.PutRecordBatch(ctx, req, optFns...)
	if err != nil {
		return nil, err
	}
	if be := record.Unacknowledged(opPutRecordBatch, len(req.Records), out.RequestResponses, batchResult); be != nil {
		return out, be
	}
	return out, nil
}

const opPutRecordBatch = "PutRecordBatch"

// batchResult gives record.Unacknowledged and record.MarkFailed the fields
// of a PutRecordBatch result.
func batchResult(r *types.PutRecordBatchResponseEntry) (code, message, id **string) {
	return &r.ErrorCode, &r.ErrorMessage, &r.RecordId
}

// encryptBatch returns a copy of in with every record encrypted, or an
// error and nothing.
func encryptBatch(ctx context.Context, enc *record.Encryptor, in *firehose.PutRecordBatchInput) (*firehose.PutRecordBatchInput, error) {
	if enc == nil {
		return nil, errNilEncryptor
	}
	if in == nil {
		return nil, fmt.Errorf("%w: nil input", record.ErrInvalidInput)
	}
	stream := aws.ToString(in.DeliveryStreamName)
	if err := checkStream(stream); err != nil {
		return nil, err
	}
	n := len(in.Records)
	if n < 1 || n > MaxBatchRecords {
		return nil, fmt.Errorf("%w: %d records, want 1 to %d", record.ErrInvalidInput, n, MaxBatchRecords)
	}
	// Every envelope adds at least Overhead+1 bytes: check the batch before
	// any KMS call, and again with the actual sizes.
	least := 0
	for _, r := range in.Records {
		least += envelope.Overhead + 1 + len(r.Data)
	}
	if least > MaxBatchSize {
		return nil, fmt.Errorf("%w: batch of at least %d bytes encrypted, Firehose limit %d", record.ErrRecordTooLarge, least, MaxBatchSize)
	}
	recs := make([]types.Record, n)
	total := 0
	for i, r := range in.Records {
		env, err := Encrypt(ctx, enc, stream, r.Data)
		if err != nil {
			// Stop at the first failure: a KMS error would repeat.
			return nil, record.NotSent(opPutRecordBatch, n, record.RecordError{Index: i, Err: err})
		}
		recs[i] = types.Record{Data: env}
		total += len(env)
	}
	if total > MaxBatchSize {
		return nil, fmt.Errorf("%w: batch of %d bytes encrypted, Firehose limit %d", record.ErrRecordTooLarge, total, MaxBatchSize)
	}
	req := *in
	req.Records = recs
	return &req, nil
}

// checkStream checks a delivery stream name or ARN before anything is
// encrypted or read.
func checkStream(deliveryStream string) error {
	if _, err := streamid.Firehose(deliveryStream); err != nil {
		return fmt.Errorf("%w: %w", record.ErrInvalidInput, err)
	}
	return nil
}
