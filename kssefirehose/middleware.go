package kssefirehose

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/smithy-go/middleware"

	"github.com/ksse-go/ksse/internal/stackopt"
	"github.com/ksse-go/ksse/record"
)

// WithEncryption returns a client option that makes a Firehose client
// encrypt the records of PutRecord and PutRecordBatch with enc, as
// [PutRecord] and [PutRecordBatch] do, without changing the calls:
//
//	client := firehose.NewFromConfig(cfg, kssefirehose.WithEncryption(enc))
//
// A record that fails to encrypt, or a batch over the Firehose limits,
// fails the call, and nothing is sent. The SDK wraps the error in a
// *smithy.OperationError.
//
// Records that Firehose rejects are reported as the SDK reports them: in
// PutRecordBatchOutput.FailedPutCount and the ErrorCode of each entry of
// RequestResponses, by index in the caller's records. A record that
// Firehose did not acknowledge is marked there too, with ErrorCode
// "InternalFailure", so that a caller who retries the failed records
// retries it:
//   - a result without a RecordId;
//   - every record, when the number of results differs from the number of
//     records. RequestResponses then gets one entry per record.
//
// The option also adds the user-agent marker "ksse/VERSION".
func WithEncryption(enc *record.Encryptor) func(*firehose.Options) {
	m := &transparent{enc: enc}
	return func(o *firehose.Options) {
		o.APIOptions = append(o.APIOptions, stackopt.Add(m))
	}
}

const middlewareID = "ksse.FirehoseEncryption"

type transparent struct {
	enc *record.Encryptor
}

func (*transparent) ID() string { return middlewareID }

// HandleInitialize encrypts the input of PutRecord and PutRecordBatch,
// calls the rest of the stack, and marks in a PutRecordBatch output the
// records that Firehose did not acknowledge.
func (t *transparent) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	var err error
	n := -1 // records of a PutRecordBatch
	switch p := in.Parameters.(type) {
	case *firehose.PutRecordInput:
		in.Parameters, err = encryptRecord(ctx, t.enc, p)
	case *firehose.PutRecordBatchInput:
		in.Parameters, err = encryptBatch(ctx, t.enc, p)
		n = len(p.Records)
	}
	if err != nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, err
	}
	out, md, err := next.HandleInitialize(ctx, in)
	if res, ok := out.Result.(*firehose.PutRecordBatchOutput); ok && res != nil && err == nil && n >= 0 {
		if be := record.Unacknowledged(opPutRecordBatch, n, res.RequestResponses, batchResult); be != nil {
			var failed int32
			res.RequestResponses, failed = record.MarkFailed(res.RequestResponses, n, be, batchResult)
			res.FailedPutCount = &failed
		}
	}
	return out, md, err
}
