// Package ksselambda decrypts ksse-encrypted Kinesis records in AWS Lambda
// functions written with github.com/aws/aws-lambda-go. One bad record
// never stops a shard, and a record that could not be decrypted this time
// is delivered again.
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
// treats the whole batch as processed: the records withheld after a
// transient failure would be skipped (though logged).
//
// # Failures
//
// A record fails to decrypt either for good or for now.
//
// A permanent failure ([record.IsPermanent]) recurs on every delivery. The
// record is not authentic (forged, tampered with, or written for another
// stream), not encrypted, under a KMS key not in the Decryptor's
// AllowedKeys, or refused by KMS for access or key state. Such a record is
// rejected:
//   - it is taken out of the event and passed to [Options].OnReject;
//   - it is not reported in BatchItemFailures, so Lambda does not deliver
//     it again, and the rest of its shard goes on.
//
// The default OnReject logs it with slog.Default at level Error: event ID,
// event source ARN, sequence number and reason, never the record's content.
//
// A transient failure may pass: KMS throttling, the Decryptor's KMS rate
// limit, a KMS or network error, the function's deadline. The record is
// reported in BatchItemFailures, and it and every later record of its shard
// are withheld from the handler. Lambda checkpoints the shard there and
// delivers the withheld records again, in order. Each transient failure is
// logged at level Warn.
//
// A record is rejected once. OnReject is called after the handler returns,
// and only for records that Lambda may checkpoint past. A record that
// Lambda will deliver again is rejected then: the handler failed, or
// reported an earlier record of its shard as failed.
//
// Records are decrypted for the stream named by their EventSourceARN; an
// enhanced fan-out consumer ARN names its stream. The distinct data keys
// of an event are unwrapped concurrently ([record.Decryptor.DecryptBatch]).
// aws-lambda-go has already decoded the base64 of the event's data.
package ksselambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ksse-go/ksse/record"
)

// HandlerFunc is the shape of a Lambda handler of Kinesis events with
// partial batch responses.
type HandlerFunc func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error)

// Options configure a [Handler].
type Options struct {
	// OnReject is called for each record that failed to decrypt for good,
	// once the handler has returned (see the package documentation). r is
	// the record as delivered: its Data is the ciphertext. err is why it
	// failed; record.IsPermanent(err) is true. Default: log it with
	// slog.Default at level Error, without the record's content.
	OnReject func(ctx context.Context, r events.KinesisEventRecord, err error)
}

// Handler returns a handler that decrypts the records of each event with
// dec and calls fn with the decrypted event, holding the records to process
// (see the package documentation). fn is not called when no record is left
// to process.
//
// The response is fn's, with a batch item failure added for the first
// transient failure of each shard. An error from fn is returned as is:
// Lambda then retries the whole batch, and no record is rejected.
func Handler(dec *record.Decryptor, fn HandlerFunc, optFns ...func(*Options)) HandlerFunc {
	var o Options
	for _, f := range optFns {
		f(&o)
	}
	if o.OnReject == nil {
		o.OnReject = logReject
	}
	return func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		out, failures, err := DecryptEvent(ctx, dec, ev)
		var rejected []record.RecordError
		if be, ok := err.(*record.BatchError); ok {
			for _, f := range be.Failed {
				if record.IsPermanent(f.Err) {
					rejected = append(rejected, f)
					continue
				}
				r := ev.Records[f.Index]
				slog.WarnContext(ctx, "ksselambda: record failed to decrypt for now; reported in batchItemFailures, it and the later records of its shard withheld",
					"eventID", r.EventID, "eventSourceARN", r.EventSourceArn, "sequenceNumber", r.Kinesis.SequenceNumber, "err", f.Err)
			}
		}
		var resp events.KinesisEventResponse
		if len(out.Records) > 0 {
			var ferr error
			resp, ferr = fn(ctx, out)
			if ferr != nil {
				return resp, ferr
			}
		}
		resp.BatchItemFailures = append(resp.BatchItemFailures, failures...)
		if len(rejected) > 0 {
			if cps, ok := checkpoints(ev, resp.BatchItemFailures); ok {
				for _, f := range rejected {
					r := ev.Records[f.Index]
					if cp, redelivered := cps[shardOf(r)]; redelivered && !seqLess(r.Kinesis.SequenceNumber, cp) {
						continue // delivered again, rejected then
					}
					o.OnReject(ctx, r, f.Err)
				}
			}
		}
		return resp, nil
	}
}

// DecryptEvent decrypts the records of ev with dec, into a new event: the
// caller's is not modified. It returns:
//
//   - out, the decrypted records to process, in order: for each shard,
//     those before its first transient failure, without the records that
//     failed for good;
//   - failures, the first record of each shard that failed transiently, by
//     sequence number, to report in KinesisEventResponse.BatchItemFailures;
//   - err, nil when every record decrypted, and otherwise a
//     *record.BatchError that lists, by index in ev.Records, the records
//     that failed for good (in neither out nor failures; record.IsPermanent
//     is true of their errors) and the transient failures reported in
//     failures. The records withheld after a transient failure are not
//     listed.
//
// A decrypted record has its plaintext Data and PartitionKey and
// EncryptionType "KMS"; a plaintext record passed through by a Decryptor
// with AllowPlaintext has EncryptionType "NONE".
func DecryptEvent(ctx context.Context, dec *record.Decryptor, ev events.KinesisEvent) (out events.KinesisEvent, failures []events.KinesisBatchItemFailure, err error) {
	recs, errs := decryptAll(ctx, dec, ev.Records)
	withheld := map[shard]bool{} // shards with a transient failure
	out.Records = make([]events.KinesisEventRecord, 0, len(ev.Records))
	var be *record.BatchError
	for i, r := range ev.Records {
		shard := shardOf(r)
		if withheld[shard] {
			continue
		}
		if errs[i] == nil {
			out.Records = append(out.Records, recs[i])
			continue
		}
		if be == nil {
			be = &record.BatchError{Op: "DecryptEvent"}
		}
		be.Failed = append(be.Failed, record.RecordError{Index: i, Err: errs[i]})
		if !record.IsPermanent(errs[i]) {
			withheld[shard] = true
			failures = append(failures, events.KinesisBatchItemFailure{ItemIdentifier: r.Kinesis.SequenceNumber})
		}
	}
	if be != nil {
		return out, failures, be
	}
	return out, failures, nil
}

// decryptAll decrypts records, one DecryptBatch per stream. recs[i] is
// records[i] decrypted, unless errs[i] is set.
func decryptAll(ctx context.Context, dec *record.Decryptor, records []events.KinesisEventRecord) (recs []events.KinesisEventRecord, errs []error) {
	recs = make([]events.KinesisEventRecord, len(records))
	errs = make([]error, len(records))
	if dec == nil {
		for i := range records {
			errs[i] = fmt.Errorf("%w: nil Decryptor", record.ErrInvalidInput)
		}
		return recs, errs
	}
	byStream := map[string][]int{} // by event source: a stream or consumer ARN
	var streams []string
	for i, r := range records {
		s := r.EventSourceArn
		if _, ok := byStream[s]; !ok {
			streams = append(streams, s)
		}
		byStream[s] = append(byStream[s], i)
	}
	for _, s := range streams {
		idx := byStream[s]
		data := make([][]byte, len(idx))
		for j, i := range idx {
			data[j] = records[i].Kinesis.Data
		}
		out, err := dec.DecryptBatch(ctx, s, data)
		failed := map[int]error{}
		var be *record.BatchError
		switch {
		case errors.As(err, &be):
			for _, f := range be.Failed {
				failed[f.Index] = f.Err
			}
		case err != nil: // an invalid stream: every record fails
			for j := range idx {
				failed[j] = err
			}
		}
		for j, i := range idx {
			if e, ok := failed[j]; ok {
				errs[i] = e
				continue
			}
			r := records[i]
			if d := out[j]; d.Encrypted {
				r.Kinesis.Data, r.Kinesis.PartitionKey, r.Kinesis.EncryptionType = d.Data, d.PartitionKey, "KMS"
			} else {
				r.Kinesis.EncryptionType = "NONE"
			}
			recs[i] = r
		}
	}
	return recs, errs
}

// checkpoints returns, for each shard of ev with a failure in resp, its
// lowest failed sequence number: where Lambda delivers it again from. ok
// is false when a failure names no record of ev, which makes Lambda retry
// the whole batch.
func checkpoints(ev events.KinesisEvent, fails []events.KinesisBatchItemFailure) (cps map[shard]string, ok bool) {
	shardOfSeq := make(map[string]shard, len(ev.Records))
	for _, r := range ev.Records {
		shardOfSeq[r.Kinesis.SequenceNumber] = shardOf(r)
	}
	cps = map[shard]string{}
	for _, f := range fails {
		shard, found := shardOfSeq[f.ItemIdentifier]
		if !found {
			return nil, false
		}
		if cp, has := cps[shard]; !has || seqLess(f.ItemIdentifier, cp) {
			cps[shard] = f.ItemIdentifier
		}
	}
	return cps, true
}

// seqLess orders Kinesis sequence numbers: decimal strings without leading
// zeros.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// shard identifies the shard of a record: its event source and the shard
// ID that starts its event ID ("shardId-000000000000:SEQUENCE").
type shard struct{ source, id string }

// shardOf returns the shard of r, without allocating.
func shardOf(r events.KinesisEventRecord) shard {
	id, _, _ := strings.Cut(r.EventID, ":")
	return shard{r.EventSourceArn, id}
}

// logReject is the default OnReject.
func logReject(ctx context.Context, r events.KinesisEventRecord, err error) {
	slog.ErrorContext(ctx, "ksselambda: record rejected: it will never decrypt; taken out of the event and not retried",
		"eventID", r.EventID, "eventSourceARN", r.EventSourceArn, "sequenceNumber", r.Kinesis.SequenceNumber, "err", err)
}
