package kssefirehose

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/ksse-go/ksse/internal/version"
	"github.com/ksse-go/ksse/record"
)

// WithEncryption returns a client option that makes a Firehose client
// encrypt the records of PutRecord and PutRecordBatch with enc, as
// [PutRecord] and [PutRecordBatch] do, without changing the calls:
//
//	client := firehose.NewFromConfig(cfg, kssefirehose.WithEncryption(enc))
//
// Failures to encrypt, and batches over the Firehose limits, are returned
// as errors (wrapped by the SDK in a *smithy.OperationError) and nothing is
// sent. Records that Firehose rejects are reported as the SDK reports
// them, in PutRecordBatchOutput.FailedPutCount and the ErrorCode of each
// entry of RequestResponses, which correspond by index to the caller's
// records. A record that Firehose did not acknowledge (a response with
// fewer or more results than records, or a result without a RecordId) is
// reported the same way, with the ErrorCode "InternalFailure", so that a
// caller who retries the failed records retries it; RequestResponses then
// has one entry per record. The option also adds the user-agent marker
// "ksse/VERSION".
func WithEncryption(enc *record.Encryptor) func(*firehose.Options) {
	m := &transparent{enc: enc}
	return func(o *firehose.Options) {
		o.APIOptions = append(o.APIOptions, m.addTo)
	}
}

const middlewareID = "ksse.FirehoseEncryption"

type transparent struct {
	enc *record.Encryptor
}

func (t *transparent) addTo(stack *middleware.Stack) error {
	if _, ok := stack.Initialize.Get(middlewareID); ok {
		_, err := stack.Initialize.Swap(middlewareID, t)
		return err
	}
	if err := stack.Initialize.Add(t, middleware.Before); err != nil {
		return err
	}
	return awsmiddleware.AddUserAgentKeyValue("ksse", version.Get())(stack)
}

func (*transparent) ID() string { return middlewareID }

func (t *transparent) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	var err error
	switch p := in.Parameters.(type) {
	case *firehose.PutRecordInput:
		if t.enc == nil || p.Record == nil {
			return middleware.InitializeOutput{}, middleware.Metadata{}, fmt.Errorf("%w: nil Encryptor or record", record.ErrInvalidInput)
		}
		env, err := Encrypt(ctx, t.enc, deref(p.DeliveryStreamName), p.Record.Data)
		if err != nil {
			return middleware.InitializeOutput{}, middleware.Metadata{}, err
		}
		req := *p
		req.Record = &types.Record{Data: env}
		in.Parameters = &req
	case *firehose.PutRecordBatchInput:
		if t.enc == nil {
			return middleware.InitializeOutput{}, middleware.Metadata{}, fmt.Errorf("%w: nil Encryptor", record.ErrInvalidInput)
		}
		if in.Parameters, err = encryptBatch(ctx, t.enc, p); err != nil {
			return middleware.InitializeOutput{}, middleware.Metadata{}, err
		}
		out, md, err := next.HandleInitialize(ctx, in)
		if res, ok := out.Result.(*firehose.PutRecordBatchOutput); ok && res != nil && err == nil {
			if be := batchFailures(res, len(p.Records)); be != nil {
				markFailed(res, len(p.Records), be)
			}
		}
		return out, md, err
	}
	return next.HandleInitialize(ctx, in)
}

// markFailed gives every record that be lists an ErrorCode in out, and sets
// FailedPutCount to the number of records with one, so that a caller who
// checks them, as Firehose documents, retries every record that Firehose
// did not acknowledge. If out does not have n results, it gets n.
func markFailed(out *firehose.PutRecordBatchOutput, n int, be *record.BatchError) {
	if len(out.RequestResponses) != n {
		rs := make([]types.PutRecordBatchResponseEntry, n)
		copy(rs, out.RequestResponses)
		out.RequestResponses = rs
	}
	for _, f := range be.Failed {
		r := &out.RequestResponses[f.Index]
		if r.ErrorCode == nil {
			r.ErrorCode = aws.String("InternalFailure")
			r.ErrorMessage = aws.String("ksse: " + f.Err.Error())
			r.RecordId = nil
		}
	}
	failed := int32(0)
	for _, r := range out.RequestResponses {
		if r.ErrorCode != nil {
			failed++
		}
	}
	out.FailedPutCount = aws.Int32(failed)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
