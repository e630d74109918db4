// Package ksselambda decrypts ksse-encrypted Kinesis records in AWS Lambda
// functions written with github.com/aws/aws-lambda-go, and reports the
// records that fail to decrypt as a partial batch response, so that one bad
// record neither poisons nor silently drops a batch.
//
// The package is named ksselambda, not lambda, so that a function's main
// can import it next to github.com/aws/aws-lambda-go/lambda.
//
// Wrap the function's handler; its code does not change:
//
//	func handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
//		for _, r := range ev.Records {
//			// r.Kinesis.Data and r.Kinesis.PartitionKey are plaintext
//		}
//		return events.KinesisEventResponse{}, nil
//	}
//
//	lambda.Start(ksselambda.Handler(dec, handle))
//
// The event source mapping must have FunctionResponseTypes
// ["ReportBatchItemFailures"]. Without it Lambda ignores the response and
// treats the whole batch as processed: the records that failed to decrypt,
// and the later ones of their shard, would be skipped (though logged).
//
// # Failures
//
// Lambda checkpoints a shard at the lowest sequence number a function
// reports as failed, and delivers again every record from there on. So when
// a record fails to decrypt (not authentic, written without encryption, or
// its data key refused by KMS), the handler passes on the records of its
// shard that come before it, withholds it and every later record of the
// same shard, and reports it in BatchItemFailures: the withheld records
// are processed, in order, when Lambda delivers them again. A record that
// fails every time (a forged or corrupted one) is retried as configured by
// the event source mapping (MaximumRetryAttempts, MaximumRecordAgeInSeconds)
// and then goes to its on-failure destination, like any record a function
// cannot process; it is never handed to the function. Each failure is
// logged with slog.Default at level Error, with the event ID and reason;
// no record content is logged.
//
// Records are decrypted for the stream named by their EventSourceARN.
// aws-lambda-go has already decoded the base64 of the event's data.
package ksselambda

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ksse-go/ksse/record"
)

// HandlerFunc is the shape of a Lambda handler of Kinesis events with
// partial batch responses.
type HandlerFunc func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error)

// Handler returns a handler that decrypts the records of each event with
// dec and calls fn with the decrypted event, holding the records to process
// (see the package documentation). fn is not called when no record is left
// to process.
//
// The response is fn's, with the batch item failures of the records that
// failed to decrypt added. An error from fn is returned as is: Lambda then
// retries the whole batch.
func Handler(dec *record.Decryptor, fn HandlerFunc) HandlerFunc {
	return func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		out, failures, err := DecryptEvent(ctx, dec, ev)
		if err != nil {
			logFailures(ctx, ev, err)
		}
		var resp events.KinesisEventResponse
		if len(out.Records) > 0 {
			resp, err = fn(ctx, out)
			if err != nil {
				return resp, err
			}
		}
		resp.BatchItemFailures = append(resp.BatchItemFailures, failures...)
		return resp, nil
	}
}

// DecryptEvent decrypts the records of ev with dec, into a new event: the
// caller's is not modified. out holds the decrypted records to process, in
// order: for each shard, those before its first record that fails. failures
// names, by sequence number, the first record of each shard that failed, to
// report in KinesisEventResponse.BatchItemFailures. err, for logging, is nil
// when every record decrypted, and otherwise a *record.BatchError giving
// the reason of each failed record by its index in ev.Records.
//
// A decrypted record has its plaintext Data and PartitionKey and
// EncryptionType "KMS"; a plaintext record passed through by a Decryptor
// with AllowPlaintext has EncryptionType "NONE".
func DecryptEvent(ctx context.Context, dec *record.Decryptor, ev events.KinesisEvent) (out events.KinesisEvent, failures []events.KinesisBatchItemFailure, err error) {
	failed := map[string]bool{} // shards with a failed record
	var be *record.BatchError
	for i, r := range ev.Records {
		shard := shardOf(r)
		if failed[shard] {
			continue
		}
		d, err := decrypt(ctx, dec, r)
		if err != nil {
			failed[shard] = true
			failures = append(failures, events.KinesisBatchItemFailure{ItemIdentifier: r.Kinesis.SequenceNumber})
			if be == nil {
				be = &record.BatchError{Op: "DecryptEvent"}
			}
			be.Failed = append(be.Failed, record.RecordError{Index: i, Err: err})
			continue
		}
		out.Records = append(out.Records, d)
	}
	if be != nil {
		return out, failures, be
	}
	return out, failures, nil
}

func decrypt(ctx context.Context, dec *record.Decryptor, r events.KinesisEventRecord) (events.KinesisEventRecord, error) {
	if dec == nil {
		return r, fmt.Errorf("%w: nil Decryptor", record.ErrInvalidInput)
	}
	d, err := dec.Decrypt(ctx, streamOf(r.EventSourceArn), r.Kinesis.Data)
	if err != nil {
		return r, err
	}
	if !d.Encrypted {
		r.Kinesis.EncryptionType = "NONE"
		return r, nil
	}
	r.Kinesis.Data = d.Data
	r.Kinesis.PartitionKey = d.PartitionKey
	r.Kinesis.EncryptionType = "KMS"
	return r, nil
}

// shardOf returns the identity of the shard of r: its stream and the shard
// ID that starts its event ID ("shardId-000000000000:SEQUENCE").
func shardOf(r events.KinesisEventRecord) string {
	shard, _, _ := strings.Cut(r.EventID, ":")
	return r.EventSourceArn + " " + shard
}

// streamOf returns the stream ARN of an event source ARN, which may be the
// ARN of an enhanced fan-out consumer (…:stream/NAME/consumer/C:T).
func streamOf(arn string) string {
	if i := strings.Index(arn, "/consumer/"); i >= 0 && strings.HasPrefix(arn, "arn:") {
		return arn[:i]
	}
	return arn
}

func logFailures(ctx context.Context, ev events.KinesisEvent, err error) {
	be, ok := err.(*record.BatchError)
	if !ok {
		slog.ErrorContext(ctx, "ksselambda: decrypting the event failed", "err", err)
		return
	}
	for _, f := range be.Failed {
		r := ev.Records[f.Index]
		slog.ErrorContext(ctx, "ksselambda: record failed to decrypt; reported in batchItemFailures, the later records of its shard withheld",
			"eventID", r.EventID, "eventSourceARN", r.EventSourceArn, "sequenceNumber", r.Kinesis.SequenceNumber, "err", f.Err)
	}
}
