package record

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse/internal/streamid"
)

// A batch is sent whole or not at all. The functions of this file are the
// rules of a batch, as pure transforms: encrypt a request, read the
// failures of a response, mark them in it. Encryptor.PutRecords, the ksse
// middleware and kssefirehose share them.

// EncryptPutRecords returns a copy of in with every entry encrypted, ready
// to send to the stream named by in.StreamARN or in.StreamName. The
// caller's input is not modified.
//
// Each entry's partition key is hidden. Its ExplicitHashKey is the hash key
// of the plaintext partition key, unless the caller set one.
//
// If an entry fails, nothing is returned to send:
//   - entries that fail to validate give a *BatchError: each of them with
//     its reason, every other entry with ErrNotSent. Caller mistakes are
//     found before any KMS call.
//   - the first entry that fails to encrypt gives a *BatchError: that entry
//     with its reason, every other one with ErrNotSent.
//   - a request over MaxPutRecordsSize once encrypted gives
//     ErrRecordTooLarge.
func (e *Encryptor) EncryptPutRecords(ctx context.Context, in *kinesis.PutRecordsInput) (*kinesis.PutRecordsInput, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: nil input", ErrInvalidInput)
	}
	n := len(in.Records)
	if n < 1 || n > MaxPutRecordsEntries {
		return nil, fmt.Errorf("%w: %d records, want 1 to %d", ErrInvalidInput, n, MaxPutRecordsEntries)
	}
	b, err := e.bind.kinesisStream(streamid.Of(in.StreamARN, in.StreamName))
	if err != nil {
		return nil, err
	}
	// Caller mistakes first, for every entry, before any KMS call.
	var invalid []RecordError
	for i, r := range in.Records {
		pk := aws.ToString(r.PartitionKey)
		err := checkPartitionKey(pk)
		if err == nil {
			err = e.checkSize(pk, r.Data, len(OutboundPartitionKey))
		}
		if err != nil {
			invalid = append(invalid, RecordError{Index: i, Err: err})
		}
	}
	if invalid != nil {
		return nil, NotSent(opPutRecords, n, invalid...)
	}
	entries, size, i, err := e.sealEntries(ctx, b, in.Records)
	if err != nil {
		return nil, NotSent(opPutRecords, n, RecordError{Index: i, Err: err})
	}
	if size > e.opts.MaxPutRecordsSize {
		return nil, fmt.Errorf("%w: request of %d bytes encrypted, limit %d: split the batch", ErrRecordTooLarge, size, e.opts.MaxPutRecordsSize)
	}
	e.tel.Encrypted(ctx, b.kb.AD, n)
	req := *in
	req.Records = entries
	return &req, nil
}

const opPutRecords = "PutRecords"

// sealEntries encrypts recs for b. The envelopes share one buffer and the
// hash keys one string, rather than one of each per record. It returns the
// request's size, or stops at the first failure, the record at index i.
func (e *Encryptor) sealEntries(ctx context.Context, b *binding, recs []types.PutRecordsRequestEntry) (entries []types.PutRecordsRequestEntry, size, i int, err error) {
	n := len(recs)
	entries = make([]types.PutRecordsRequestEntry, n)
	outboundKey := aws.String(OutboundPartitionKey)
	rest := sealReserve{records: n}
	for _, r := range recs {
		rest.bytes += len(aws.ToString(r.PartitionKey)) + len(r.Data)
	}
	var buf []byte // envelopes sealed so far in the current chunk
	digits := make([]byte, 0, 39*n)
	hkEnd := make([]int, n) // end of record i's hash key in digits; 0 if the caller set one
	for i, r := range recs {
		pk := aws.ToString(r.PartitionKey)
		rest.bytes -= len(pk) + len(r.Data)
		rest.records--
		if r.ExplicitHashKey == nil {
			if digits, err = e.appendHashKey(ctx, digits, b, pk); err != nil {
				return nil, 0, i, err
			}
			hkEnd[i] = len(digits)
		}
		out, err := e.seal(ctx, buf[len(buf):], b, pk, r.Data, len(OutboundPartitionKey), rest)
		if err != nil {
			return nil, 0, i, err
		}
		env := out[:len(out):len(out)]
		buf = out[len(out):]
		entries[i] = types.PutRecordsRequestEntry{Data: env, PartitionKey: outboundKey, ExplicitHashKey: r.ExplicitHashKey}
		size += len(env) + len(OutboundPartitionKey)
	}
	hashKeys, all, start := make([]string, n), string(digits), 0
	for i, end := range hkEnd {
		if end > 0 {
			hashKeys[i] = all[start:end]
			entries[i].ExplicitHashKey = &hashKeys[i]
			start = end
		}
	}
	return entries, size, 0, nil
}

// NotSent returns the error of a batch of n records that was not sent
// because of failed: each of failed with its reason, every other record
// with ErrNotSent.
func NotSent(op string, n int, failed ...RecordError) *BatchError {
	be := &BatchError{Op: op, Failed: make([]RecordError, n)}
	for i := range be.Failed {
		be.Failed[i] = RecordError{Index: i, Err: ErrNotSent}
	}
	for _, f := range failed {
		if f.Index >= 0 && f.Index < n {
			be.Failed[f.Index] = f
		}
	}
	return be
}

// Unacknowledged returns the records of a batch of n that its response does
// not acknowledge, each with a *ServiceError, or nil. It reads the results
// (PutRecordsOutput.Records, PutRecordBatchOutput.RequestResponses) through
// fields, which points to a result's ErrorCode, ErrorMessage and ID
// (SequenceNumber, RecordId).
//
// A record is acknowledged only if its result has an ID and no ErrorCode.
// If the response does not have n results, none can be matched to its
// record, and every record is unacknowledged.
func Unacknowledged[R any](op string, n int, results []R, fields func(*R) (code, message, id **string)) *BatchError {
	be := &BatchError{Op: op}
	if len(results) != n {
		msg := fmt.Sprintf("response has %d results for %d records", len(results), n)
		for i := range n {
			be.Failed = append(be.Failed, RecordError{Index: i, Err: &ServiceError{Code: "Unknown", Message: msg}})
		}
		return be
	}
	for i := range results {
		code, msg, id := fields(&results[i])
		if *code != nil || *id == nil {
			be.Failed = append(be.Failed, RecordError{Index: i, Err: &ServiceError{Code: codeOr(*code, "Unknown"), Message: aws.ToString(*msg)}})
		}
	}
	if len(be.Failed) == 0 {
		return nil
	}
	return be
}

// MarkFailed gives every result of be.Failed an ErrorCode, so that a caller
// who checks ErrorCode, as the AWS documentation says, retries the record.
// A result without one is replaced by one with only the ErrorCode
// "InternalFailure" and a message. Indexes outside the batch are ignored.
// It returns the results, n of them (missing ones are added), and how many
// have an ErrorCode: the FailedRecordCount or FailedPutCount to report.
func MarkFailed[R any](results []R, n int, be *BatchError, fields func(*R) (code, message, id **string)) ([]R, int32) {
	if len(results) != n {
		rs := make([]R, n)
		copy(rs, results)
		results = rs
	}
	for _, f := range be.Failed {
		if f.Index < 0 || f.Index >= n {
			continue
		}
		r := &results[f.Index]
		if code, _, _ := fields(r); *code == nil {
			var zero R
			*r = zero
			code, msg, _ := fields(r)
			*code, *msg = aws.String("InternalFailure"), aws.String("ksse: "+f.Err.Error())
		}
	}
	failed := int32(0)
	for i := range results {
		if code, _, _ := fields(&results[i]); *code != nil {
			failed++
		}
	}
	return results, failed
}

func codeOr(code *string, none string) string {
	if code == nil || *code == "" {
		return none
	}
	return *code
}

// kinesisResult gives Unacknowledged and MarkFailed the fields of a
// PutRecords result.
func kinesisResult(r *types.PutRecordsResultEntry) (code, message, id **string) {
	return &r.ErrorCode, &r.ErrorMessage, &r.SequenceNumber
}
