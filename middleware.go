package ksse

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/ksse-go/ksse/internal/streamid"
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
		return middleware.InitializeOutput{}, middleware.Metadata{}, errSubscribeToShard
	}
	return next.HandleInitialize(ctx, in)
}

// putRecords encrypts a copy of the input, sends it, and marks in the
// output the records that Kinesis did not acknowledge.
func (t *transparent) putRecords(ctx context.Context, p *kinesis.PutRecordsInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if t.enc == nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, errNoEncryptor
	}
	req, err := t.enc.EncryptPutRecords(ctx, p)
	if err != nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, err
	}
	in.Parameters = req
	out, md, err := next.HandleInitialize(ctx, in)
	if res, ok := out.Result.(*kinesis.PutRecordsOutput); ok && res != nil && err == nil {
		n := len(req.Records)
		if be := record.Unacknowledged("PutRecords", n, res.Records, kinesisResult); be != nil {
			var failed int32
			res.Records, failed = record.MarkFailed(res.Records, n, be, kinesisResult)
			res.FailedRecordCount = &failed
		}
	}
	return out, md, err
}

// kinesisResult gives record.Unacknowledged and record.MarkFailed the
// fields of a PutRecords result.
func kinesisResult(r *types.PutRecordsResultEntry) (code, message, id **string) {
	return &r.ErrorCode, &r.ErrorMessage, &r.SequenceNumber
}

// putRecord encrypts a copy of the input and sends it.
func (t *transparent) putRecord(ctx context.Context, p *kinesis.PutRecordInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	if t.enc == nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, errNoEncryptor
	}
	req, err := t.enc.EncryptPutRecord(ctx, p)
	if err != nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, err
	}
	in.Parameters = req
	return next.HandleInitialize(ctx, in)
}

// getShardIterator remembers the stream of the iterator it returns.
func (t *transparent) getShardIterator(ctx context.Context, p *kinesis.GetShardIteratorInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	if res, ok := out.Result.(*kinesis.GetShardIteratorOutput); ok && res != nil && res.ShardIterator != nil {
		if stream := streamid.Of(p.StreamARN, p.StreamName); stream != "" {
			t.iterators.put(*res.ShardIterator, stream)
		}
	}
	return out, md, err
}

// getRecords finds the stream of the call, sends it, remembers the stream of
// the next iterator and decrypts the records.
func (t *transparent) getRecords(ctx context.Context, p *kinesis.GetRecordsInput, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	var none middleware.InitializeOutput
	stream, err := t.streamToRead(p)
	if err != nil {
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
	if err := t.decrypt(ctx, stream, res, &md); err != nil {
		return none, md, err
	}
	return out, md, nil
}

// streamToRead returns the stream of a GetRecords call, or why the call
// must not be sent.
func (t *transparent) streamToRead(p *kinesis.GetRecordsInput) (string, error) {
	if t.dec == nil {
		return "", errNoDecryptor
	}
	if t.dec.TrustsAnyKey() && !t.opts.InsecureAllowAnyKey {
		return "", errTrustsAnyKey
	}
	stream := aws.ToString(p.StreamARN)
	if stream == "" {
		var ok bool
		if stream, ok = t.iterators.get(aws.ToString(p.ShardIterator)); !ok {
			return "", ErrUnknownStream
		}
	}
	if _, err := streamid.Kinesis(stream); err != nil {
		return "", fmt.Errorf("%w: %w", record.ErrInvalidInput, err)
	}
	return stream, nil
}

// decrypt decrypts the records of res in place and sets their key ARNs in
// md. A failed record makes it return a *GetRecordsError; with OnReject, a
// record that fails for good is taken out of res instead.
func (t *transparent) decrypt(ctx context.Context, stream string, res *kinesis.GetRecordsOutput, md *middleware.Metadata) error {
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
		return err
	}
	record.ApplyDecrypted(res.Records, dec, err)
	arns := make([]string, len(dec))
	for i, d := range dec {
		arns[i] = d.KeyARN
	}
	if err == nil {
		md.Set(keyARNsKey{}, arns)
		return nil
	}
	be, ok := err.(*record.BatchError)
	if !ok {
		return err
	}
	be.Op = "DecryptRecords"
	if t.opts.OnReject == nil {
		md.Set(keyARNsKey{}, arns)
		res.ResultMetadata = *md
		return &GetRecordsError{Output: res, Err: be}
	}
	return t.reject(ctx, stream, res, read, arns, be, md)
}

// reject, in OnReject mode, fails the call with nothing of the output on a
// transient failure, to be retried. Otherwise it takes the records that
// failed for good out of res and passes them, as read, to OnReject.
func (t *transparent) reject(ctx context.Context, stream string, res *kinesis.GetRecordsOutput, read []types.Record, arns []string, be *record.BatchError, md *middleware.Metadata) error {
	var transient []record.RecordError
	for _, f := range be.Failed {
		if !record.IsPermanent(f.Err) {
			transient = append(transient, f)
		}
	}
	if len(transient) > 0 {
		return &GetRecordsError{Err: &record.BatchError{Op: be.Op, Failed: transient}}
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
	return nil
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
