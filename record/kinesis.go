package record

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// PutRecordsAPI is the part of *kinesis.Client that PutRecords calls.
type PutRecordsAPI interface {
	PutRecords(ctx context.Context, params *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// PutRecordAPI is the part of *kinesis.Client that PutRecord calls.
type PutRecordAPI interface {
	PutRecord(ctx context.Context, params *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)
}

var (
	_ PutRecordsAPI = (*kinesis.Client)(nil)
	_ PutRecordAPI  = (*kinesis.Client)(nil)
)

// ErrNotSent marks the records of a batch that were not sent because another
// record of the same batch failed to encrypt: a batch is sent whole or not
// at all, so records keep their order.
var ErrNotSent = errors.New("record: not sent: another record of the batch failed to encrypt")

// PutRecords encrypts every entry of in and sends them with one PutRecords
// call of client, for the stream named by in.StreamARN or in.StreamName.
// The caller's input is not modified.
//
// Each entry's partition key is hidden and its ExplicitHashKey set to the
// hash key of the plaintext partition key, unless the caller set one. If any
// entry fails to validate or encrypt, nothing is sent and the error is a
// *BatchError that lists every entry: the ones at fault with their reason,
// the others with ErrNotSent. If the encrypted request exceeds
// MaxPutRecordsSize, nothing is sent and the error is ErrRecordTooLarge. If
// Kinesis rejects some records, PutRecords
// returns its output and a *BatchError listing them (with a *ServiceError
// each; a record without a result, or whose result has no sequence number,
// counts as failed), by their index in in.Records, whose entries still hold the
// plaintext for a retry. An error from the call itself is returned as is,
// with a nil output.
func (e *Encryptor) PutRecords(ctx context.Context, client PutRecordsAPI, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if e.tel == nil || in == nil {
		return e.putRecords(ctx, client, in, optFns...)
	}
	ctx, end := e.tel.Span(ctx, "ksse.PutRecords", streamOf(in.StreamARN, in.StreamName), len(in.Records))
	out, err := e.putRecords(ctx, client, in, optFns...)
	end(failedCount(len(in.Records), err))
	return out, err
}

// failedCount returns how many of n records err says failed.
func failedCount(n int, err error) int {
	var be *BatchError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &be):
		return len(be.Failed)
	}
	return n
}

func (e *Encryptor) putRecords(ctx context.Context, client PutRecordsAPI, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if client == nil || in == nil {
		return nil, fmt.Errorf("%w: nil client or input", ErrInvalidInput)
	}
	if n := len(in.Records); n < 1 || n > MaxPutRecordsEntries {
		return nil, fmt.Errorf("%w: %d records, want 1 to %d", ErrInvalidInput, n, MaxPutRecordsEntries)
	}
	b, err := e.bind.kinesisStream(streamOf(in.StreamARN, in.StreamName))
	if err != nil {
		return nil, err
	}
	// Caller mistakes first, for every entry, so that a batch that cannot
	// be sent makes no KMS call.
	var failed []RecordError
	for i, r := range in.Records {
		pk := aws.ToString(r.PartitionKey)
		err := checkPartitionKey(pk)
		if err == nil {
			err = e.checkSize(pk, r.Data, len(OutboundPartitionKey))
		}
		if err != nil {
			failed = append(failed, RecordError{Index: i, Err: err})
		}
	}
	if failed != nil {
		return nil, notSent("PutRecords", len(in.Records), failed)
	}
	// One buffer for the batch's envelopes and one for its hash keys, rather
	// than one of each per record.
	n := len(in.Records)
	entries := make([]types.PutRecordsRequestEntry, n)
	hashKeys := make([]string, n)
	outboundKey := aws.String(OutboundPartitionKey)
	var rest sealReserve
	for _, r := range in.Records {
		rest.bytes += len(aws.ToString(r.PartitionKey)) + len(r.Data)
	}
	rest.records = n
	var buf []byte // envelopes sealed so far in the current chunk
	digits := make([]byte, 0, 39*n)
	hkEnd := make([]int, n) // end of record i's hash key in digits; 0 if the caller set one
	total := 0
	var keyErr error // a failure to get a data key: the same for every record
	for i, r := range in.Records {
		pk := aws.ToString(r.PartitionKey)
		rest.bytes -= len(pk) + len(r.Data)
		rest.records--
		var err error
		switch {
		case keyErr != nil:
			err = keyErr // the data key will not come for this record either
		case r.ExplicitHashKey == nil:
			if digits, err = e.appendHashKey(ctx, digits, b, pk); err != nil {
				keyErr = err // nor the routing secret
				break
			}
			hkEnd[i] = len(digits)
			fallthrough
		default:
			var out []byte
			out, err = e.seal(ctx, buf[len(buf):], b, pk, r.Data, len(OutboundPartitionKey), rest)
			if err != nil {
				if !errors.Is(err, ErrRecordTooLarge) {
					keyErr = err // stop asking KMS for the rest of the batch
				}
				break
			}
			env := out[:len(out):len(out)]
			buf = out[len(out):]
			entries[i] = types.PutRecordsRequestEntry{
				Data:            env,
				PartitionKey:    outboundKey,
				ExplicitHashKey: r.ExplicitHashKey,
			}
			total += len(env) + len(OutboundPartitionKey)
		}
		if err != nil {
			failed = append(failed, RecordError{Index: i, Err: err})
		}
	}
	if failed == nil {
		all, start := string(digits), 0
		for i, end := range hkEnd {
			if end > 0 {
				hashKeys[i] = all[start:end]
				entries[i].ExplicitHashKey = &hashKeys[i]
				start = end
			}
		}
	}
	if failed == nil && total > e.opts.MaxPutRecordsSize {
		clear(entries)
		return nil, fmt.Errorf("%w: request of %d bytes encrypted, limit %d: split the batch", ErrRecordTooLarge, total, e.opts.MaxPutRecordsSize)
	}
	if failed != nil {
		clear(entries)
		return nil, notSent("PutRecords", len(in.Records), failed)
	}

	e.tel.Encrypted(ctx, b.kb.AD, len(entries))
	req := *in
	req.Records = entries
	out, err := client.PutRecords(ctx, &req, e.kinesisOptions(optFns)...)
	if err != nil {
		return nil, err
	}
	// Trust the per-record results, not only the count: a record is sent
	// only if its result entry says so.
	be := &BatchError{Op: "PutRecords"}
	if len(out.Records) != len(entries) {
		for i := range entries {
			be.Failed = append(be.Failed, RecordError{Index: i, Err: &ServiceError{Code: "Unknown",
				Message: fmt.Sprintf("response has %d results for %d records", len(out.Records), len(entries))}})
		}
		return out, be
	}
	for i, r := range out.Records {
		if r.ErrorCode != nil || r.SequenceNumber == nil {
			code := aws.ToString(r.ErrorCode)
			if code == "" {
				code = "Unknown"
			}
			be.Failed = append(be.Failed, RecordError{Index: i, Err: &ServiceError{Code: code, Message: aws.ToString(r.ErrorMessage)}})
		}
	}
	if len(be.Failed) == 0 {
		return out, nil
	}
	return out, be
}

// notSent builds the error of a batch of n records that was not sent because
// of failed; every record that did not fail itself is marked ErrNotSent.
func notSent(op string, n int, failed []RecordError) *BatchError {
	be := &BatchError{Op: op}
	j := 0
	for i := range n {
		if j < len(failed) && failed[j].Index == i {
			be.Failed = append(be.Failed, failed[j])
			j++
			continue
		}
		be.Failed = append(be.Failed, RecordError{Index: i, Err: ErrNotSent})
	}
	return be
}

// PutRecord encrypts one record and sends it with client.PutRecord, for the
// stream named by in.StreamARN or in.StreamName. The caller's input is not
// modified. Nothing is sent if encryption fails.
func (e *Encryptor) PutRecord(ctx context.Context, client PutRecordAPI, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	if client == nil || in == nil {
		return nil, fmt.Errorf("%w: nil client or input", ErrInvalidInput)
	}
	enc, err := e.Encrypt(ctx, streamOf(in.StreamARN, in.StreamName), aws.ToString(in.PartitionKey), in.Data)
	if err != nil {
		return nil, err
	}
	req := *in
	req.Data = enc.Data
	req.PartitionKey = aws.String(enc.PartitionKey)
	if req.ExplicitHashKey == nil {
		req.ExplicitHashKey = aws.String(enc.ExplicitHashKey)
	}
	return client.PutRecord(ctx, &req, e.kinesisOptions(optFns)...)
}

func (e *Encryptor) kinesisOptions(optFns []func(*kinesis.Options)) []func(*kinesis.Options) {
	if len(e.opts.KinesisOptions) == 0 {
		return optFns
	}
	return append(slices.Clip(e.opts.KinesisOptions), optFns...)
}

// streamOf returns the ARN if set, else the name.
func streamOf(arn, name *string) string {
	if s := aws.ToString(arn); s != "" {
		return s
	}
	return aws.ToString(name)
}
