package ksse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/ksse-go/ksse/internal/version"
	"github.com/ksse-go/ksse/record"
)

// middlewareID is the ID of the middleware in the Initialize step.
const middlewareID = "ksse.Encryption"

// transparent is the Initialize-step middleware of WithEncryption. It runs
// before every other Initialize middleware, so the SDK validates, signs,
// retries and logs the encrypted input, and it sees the output after
// retries, once.
type transparent struct {
	enc       *record.Encryptor
	dec       *record.Decryptor
	opts      Options
	iterators *iteratorStreams
}

// addTo adds the middleware and the user-agent marker to an operation's
// stack. Given twice (to the client and to a call), the last one replaces
// the first rather than encrypting twice.
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
	switch p := in.Parameters.(type) {
	case *kinesis.PutRecordsInput:
		return t.putRecords(ctx, p, in, next)
	case *kinesis.PutRecordInput:
		return t.putRecord(ctx, p, in, next)
	case *kinesis.GetShardIteratorInput:
		return t.getShardIterator(ctx, p, in, next)
	case *kinesis.GetRecordsInput:
		return t.getRecords(ctx, p, in, next)
	case *kinesis.SubscribeToShardInput:
		return middleware.InitializeOutput{}, middleware.Metadata{}, ErrSubscribeToShard
	}
	return next.HandleInitialize(ctx, in)
}

// putRecords encrypts with record.Encryptor.PutRecords, whose "client" is
// the rest of the middleware stack. The caller's input is not modified;
// the stack continues with an encrypted copy.
func (t *transparent) putRecords(ctx context.Context, p *kinesis.PutRecordsInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if t.enc == nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, ErrNoEncryptor
	}
	var s sent
	_, err := t.enc.PutRecords(ctx, putRecordsFunc(func(ctx context.Context, req *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
		return result[*kinesis.PutRecordsOutput](s.send(ctx, req, in, next))
	}), p)
	if s.called {
		// Sent: the SDK's answer, partial failures in the output, including
		// those the Encryptor found that the output does not mark.
		var be *record.BatchError
		if out, ok := s.out.Result.(*kinesis.PutRecordsOutput); ok && s.err == nil && errors.As(err, &be) {
			markFailed(out, len(p.Records), be)
		}
		return s.out, s.md, s.err
	}
	return middleware.InitializeOutput{}, middleware.Metadata{}, err
}

// markFailed gives every record that be lists an ErrorCode in out, so that
// a caller who checks FailedRecordCount and ErrorCode, as Kinesis documents,
// retries it: a result without a sequence number, or missing results (out
// then gets one result per record, n in all).
func markFailed(out *kinesis.PutRecordsOutput, n int, be *record.BatchError) {
	if len(out.Records) != n {
		out.Records = append(make([]types.PutRecordsResultEntry, 0, n), out.Records[:min(len(out.Records), n)]...)
		out.Records = out.Records[:n]
	}
	failed := int32(0)
	for _, f := range be.Failed {
		r := &out.Records[f.Index]
		if r.ErrorCode == nil {
			r.ErrorCode = aws.String("InternalFailure")
			r.ErrorMessage = aws.String("ksse: " + f.Err.Error())
			r.SequenceNumber, r.ShardId = nil, nil
		}
	}
	for _, r := range out.Records {
		if r.ErrorCode != nil {
			failed++
		}
	}
	out.FailedRecordCount = aws.Int32(failed)
}

func (t *transparent) putRecord(ctx context.Context, p *kinesis.PutRecordInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if t.enc == nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, ErrNoEncryptor
	}
	var s sent
	_, err := t.enc.PutRecord(ctx, putRecordFunc(func(ctx context.Context, req *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
		return result[*kinesis.PutRecordOutput](s.send(ctx, req, in, next))
	}), p)
	if s.called {
		return s.out, s.md, s.err
	}
	return middleware.InitializeOutput{}, middleware.Metadata{}, err
}

// sent records the call of the rest of the stack made on behalf of a
// record.Encryptor.
type sent struct {
	called bool
	out    middleware.InitializeOutput
	md     middleware.Metadata
	err    error
}

func (s *sent) send(ctx context.Context, req any, in middleware.InitializeInput, next middleware.InitializeHandler) (any, error) {
	s.called = true
	in.Parameters = req
	s.out, s.md, s.err = next.HandleInitialize(ctx, in)
	return s.out.Result, s.err
}

// result converts the result of the stack to the output type the
// Encryptor expects.
func result[T any](r any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	out, ok := r.(T)
	if !ok {
		return zero, fmt.Errorf("ksse: unexpected result type %T", r)
	}
	return out, nil
}

type putRecordsFunc func(context.Context, *kinesis.PutRecordsInput, ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)

func (f putRecordsFunc) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	return f(ctx, in, optFns...)
}

type putRecordFunc func(context.Context, *kinesis.PutRecordInput, ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error)

func (f putRecordFunc) PutRecord(ctx context.Context, in *kinesis.PutRecordInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	return f(ctx, in, optFns...)
}

// getShardIterator remembers the stream of the iterator it returns.
func (t *transparent) getShardIterator(ctx context.Context, p *kinesis.GetShardIteratorInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	if res, ok := out.Result.(*kinesis.GetShardIteratorOutput); ok && res != nil && res.ShardIterator != nil {
		if stream := streamOf(p.StreamARN, p.StreamName); stream != "" {
			t.iterators.put(*res.ShardIterator, stream)
		}
	}
	return out, md, err
}

// getRecords finds the stream of the call, sends it, remembers the stream of
// the next iterator and decrypts the records.
func (t *transparent) getRecords(ctx context.Context, p *kinesis.GetRecordsInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	var none middleware.InitializeOutput
	if t.dec == nil {
		return none, middleware.Metadata{}, ErrNoDecryptor
	}
	if t.dec.TrustsAnyKey() && !t.opts.InsecureAllowAnyKey {
		return none, middleware.Metadata{}, ErrDecryptorTrustsAnyKey
	}
	stream := deref(p.StreamARN)
	if stream == "" {
		var ok bool
		if stream, ok = t.iterators.get(deref(p.ShardIterator)); !ok {
			return none, middleware.Metadata{}, ErrUnknownStream
		}
	}
	if _, err := record.KinesisStream(stream); err != nil {
		return none, middleware.Metadata{}, err
	}
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	res, ok := out.Result.(*kinesis.GetRecordsOutput)
	if !ok || res == nil {
		return none, md, fmt.Errorf("ksse: unexpected GetRecords result type %T", out.Result)
	}
	if res.NextShardIterator != nil {
		t.iterators.put(*res.NextShardIterator, stream)
	}

	var read []types.Record // as read, for OnReject
	if t.opts.OnReject != nil {
		read = slices.Clone(res.Records)
	}
	data := make([][]byte, len(res.Records))
	for i := range res.Records {
		data[i] = res.Records[i].Data
	}
	dec, err := t.dec.DecryptBatch(ctx, stream, data)
	if dec == nil {
		return none, md, err
	}
	record.ApplyDecrypted(res.Records, dec, err)
	arns := make([]string, len(dec))
	for i, d := range dec {
		arns[i] = d.KeyARN
	}
	if err == nil {
		md.Set(keyARNsKey{}, arns)
		return out, md, nil
	}
	be, ok := err.(*record.BatchError)
	if !ok {
		return none, md, err
	}
	be.Op = "DecryptRecords"
	if t.opts.OnReject == nil {
		md.Set(keyARNsKey{}, arns)
		res.ResultMetadata = md
		return none, md, &GetRecordsError{Output: res, Err: be}
	}

	// Skip mode: a transient failure fails the call, with nothing of the
	// output, to be retried; otherwise the rejected records are taken out.
	var transient []record.RecordError
	for _, f := range be.Failed {
		if !record.IsPermanent(f.Err) {
			transient = append(transient, f)
		}
	}
	if len(transient) > 0 {
		return none, md, &GetRecordsError{Err: &record.BatchError{Op: be.Op, Failed: transient}}
	}
	failed := make(map[int]error, len(be.Failed))
	for _, f := range be.Failed {
		failed[f.Index] = f.Err
	}
	kept, keptARNs := res.Records[:0], arns[:0]
	for i := range res.Records {
		if e, ok := failed[i]; ok {
			t.opts.OnReject(ctx, Rejected{Stream: stream, Record: read[i], Err: e})
			continue
		}
		kept, keptARNs = append(kept, res.Records[i]), append(keptARNs, arns[i])
	}
	clear(res.Records[len(kept):])
	res.Records = kept
	md.Set(keyARNsKey{}, keptARNs)
	return out, md, nil
}

// keyARNsKey is the key of the KMS key ARNs of a GetRecords output's
// records in its middleware.Metadata.
type keyARNsKey struct{}

// KeyARNs returns the ARNs of the KMS keys that protected the records of a
// GetRecords output read through a client with [WithEncryption], given its
// ResultMetadata:
//
//	out, err := client.GetRecords(ctx, in)
//	…
//	arns := ksse.KeyARNs(out.ResultMetadata)
//
// arns[i] is the key of out.Records[i], or "" for a plaintext record passed
// through (record.DecryptorOptions.AllowPlaintext) or a record that failed
// (in [GetRecordsError].Output). It returns nil for metadata of any other
// call.
func KeyARNs(md middleware.Metadata) []string {
	arns, _ := md.Get(keyARNsKey{}).([]string)
	return arns
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// streamOf returns the ARN if set, else the name, as record does.
func streamOf(arn, name *string) string {
	if s := deref(arn); s != "" {
		return s
	}
	return deref(name)
}

// iteratorStreams maps shard iterators to their stream, holding at most max
// entries in two generations: when the current one is full it becomes the
// old one and the previous old one is dropped. Iterators expire after five
// minutes at Kinesis anyway; a consumer only needs the latest per shard.
type iteratorStreams struct {
	mu       sync.Mutex
	perGen   int
	cur, old map[string]string
}

func newIteratorStreams(max int) *iteratorStreams {
	return &iteratorStreams{perGen: max / 2, cur: make(map[string]string)}
}

func (m *iteratorStreams) put(iterator, stream string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.cur) >= m.perGen {
		m.old, m.cur = m.cur, make(map[string]string, m.perGen)
	}
	m.cur[iterator] = stream
}

func (m *iteratorStreams) get(iterator string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.cur[iterator]; ok {
		return s, true
	}
	s, ok := m.old[iterator]
	return s, ok
}
