package record

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/ksse-go/ksse/internal/streamid"
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

// PutRecords encrypts in with EncryptPutRecords and sends it with one
// PutRecords call of client. The caller's input is not modified.
//
// The error says which records were not written, by their index in
// in.Records, whose entries still hold the plaintext for a retry:
//   - if encryption fails, nothing is sent: the error of EncryptPutRecords.
//   - if Kinesis does not acknowledge some records, PutRecords returns its
//     output and a *BatchError listing them with a *ServiceError each (see
//     Unacknowledged).
//   - an error of the call itself is returned as is, with a nil output.
func (e *Encryptor) PutRecords(ctx context.Context, client PutRecordsAPI, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if e.tel == nil || in == nil {
		return e.putRecords(ctx, client, in, optFns...)
	}
	ctx, end := e.tel.Span(ctx, "ksse.PutRecords", streamid.Of(in.StreamARN, in.StreamName), len(in.Records))
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
	req, err := e.EncryptPutRecords(ctx, in)
	if err != nil {
		return nil, err
	}
	out, err := client.PutRecords(ctx, req, e.kinesisOptions(optFns)...)
	if err != nil {
		return nil, err
	}
	if be := Unacknowledged(opPutRecords, len(req.Records), out.Records, kinesisResult); be != nil {
		return out, be
	}
	return out, nil
}

// PutRecord encrypts in with EncryptPutRecord and sends it with
// client.PutRecord. The caller's input is not modified. Nothing is sent if
// encryption fails.
func (e *Encryptor) PutRecord(ctx context.Context, client PutRecordAPI, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil client or input", ErrInvalidInput)
	}
	req, err := e.EncryptPutRecord(ctx, in)
	if err != nil {
		return nil, err
	}
	return client.PutRecord(ctx, req, e.kinesisOptions(optFns)...)
}

// EncryptPutRecord returns a copy of in with its record encrypted, as
// EncryptPutRecords does each entry, for the stream named by in.StreamARN
// or in.StreamName.
func (e *Encryptor) EncryptPutRecord(ctx context.Context, in *kinesis.PutRecordInput) (*kinesis.PutRecordInput, error) {
	if in == nil {
		return nil, fmt.Errorf("%w: nil client or input", ErrInvalidInput)
	}
	enc, err := e.Encrypt(ctx, streamid.Of(in.StreamARN, in.StreamName), aws.ToString(in.PartitionKey), in.Data)
	if err != nil {
		return nil, err
	}
	req := *in
	req.Data, req.PartitionKey = enc.Data, aws.String(enc.PartitionKey)
	if req.ExplicitHashKey == nil {
		req.ExplicitHashKey = aws.String(enc.ExplicitHashKey)
	}
	return &req, nil
}

func (e *Encryptor) kinesisOptions(optFns []func(*kinesis.Options)) []func(*kinesis.Options) {
	if len(e.opts.KinesisOptions) == 0 {
		return optFns
	}
	return append(slices.Clip(e.opts.KinesisOptions), optFns...)
}
