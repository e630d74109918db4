package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/record"
)

func TestReadLine(t *testing.T) {
	in := "a\r\nb\n\n\rc\r\nlast\r"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []string
	for {
		l, err := readLine(br, nil)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		got = append(got, string(l))
	}
	require.Equal(t, []string{"a", "b", "", "\rc", "last"}, got)

	// A line longer than the largest record is an error, found without
	// reading all of it into memory.
	br = bufio.NewReaderSize(io.MultiReader(strings.NewReader("ok\n"), endless{}), 16)
	l, err := readLine(br, nil)
	require.NoError(t, err)
	require.Equal(t, "ok", string(l))
	_, err = readLine(br, nil)
	require.ErrorContains(t, err, "longer than 10485760 bytes")
}

// endless is an endless reader of 'x'.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// fakePut is a PutRecords API that records calls and rejects records as
// told.
type fakePut struct {
	calls  [][]string // data of each call
	reject func(call int, data string) string
}

func (f *fakePut) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	var datas []string
	out := &kinesis.PutRecordsOutput{}
	var failed int32
	for _, e := range in.Records {
		d := string(e.Data)
		datas = append(datas, d)
		var r types.PutRecordsResultEntry
		if code := f.reject(len(f.calls), d); code != "" {
			r.ErrorCode, r.ErrorMessage = aws.String(code), aws.String("rejected")
			failed++
		} else {
			r.ShardId, r.SequenceNumber = aws.String("shardId-000000000000"), aws.String(strconv.Itoa(len(f.calls)))
		}
		out.Records = append(out.Records, r)
	}
	out.FailedRecordCount = aws.Int32(failed)
	f.calls = append(f.calls, datas)
	return out, nil
}

// identity "encrypts" a line as itself, with a partition key.
func identity(line int, data []byte) (record.Encrypted, error) {
	return record.Encrypted{Data: bytes.Clone(data), PartitionKey: "ksse", ExplicitHashKey: "1"}, nil
}

func newTestPutter(f *fakePut) (*putter, *[]time.Duration) {
	var waits []time.Duration
	return &putter{
		client:      f,
		streamName:  aws.String("s"),
		maxAttempts: 3,
		sleep: func(_ context.Context, d time.Duration) error {
			waits = append(waits, d)
			return nil
		},
	}, &waits
}

func TestPutBatches(t *testing.T) {
	// 1,201 small lines: 500 + 500 + 201 records.
	var in strings.Builder
	for i := range 1201 {
		fmt.Fprintf(&in, "%d\n", i)
	}
	f := &fakePut{reject: func(int, string) string { return "" }}
	p, _ := newTestPutter(f)
	require.NoError(t, p.run(t.Context(), strings.NewReader(in.String()), identity))
	require.Len(t, f.calls, 3)
	require.Len(t, f.calls[0], 500)
	require.Len(t, f.calls[1], 500)
	require.Len(t, f.calls[2], 201)
	require.Equal(t, "0", f.calls[0][0])
	require.Equal(t, "1200", f.calls[2][200])
	require.Equal(t, 1201, p.sent)
	require.Equal(t, 3, p.batches)

	// Records of 1 MiB - 100 bytes: at most 5 per 5 MiB request.
	big := strings.Repeat("y", 1<<20-100) + "\n"
	f = &fakePut{reject: func(int, string) string { return "" }}
	p, _ = newTestPutter(f)
	require.NoError(t, p.run(t.Context(), strings.NewReader(strings.Repeat(big, 12)), identity))
	require.Len(t, f.calls, 3)
	require.Len(t, f.calls[0], 5)
	require.Len(t, f.calls[1], 5)
	require.Len(t, f.calls[2], 2)
	for _, c := range f.calls {
		size := 0
		for _, d := range c {
			size += len(d) + len("ksse")
		}
		require.LessOrEqual(t, size, record.DefaultMaxPutRecordsSize)
	}

	// No input: no call.
	f = &fakePut{reject: func(int, string) string { return "" }}
	p, _ = newTestPutter(f)
	require.NoError(t, p.run(t.Context(), strings.NewReader(""), identity))
	require.Empty(t, f.calls)
}

func TestPutRetriesRejectedRecords(t *testing.T) {
	// Lines 2 and 4 are throttled on the first call; the retry sends only
	// them.
	f := &fakePut{reject: func(call int, d string) string {
		if call == 0 && (d == "two" || d == "four") {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}}
	p, waits := newTestPutter(f)
	require.NoError(t, p.run(t.Context(), strings.NewReader("one\ntwo\nthree\nfour\n"), identity))
	require.Equal(t, [][]string{{"one", "two", "three", "four"}, {"two", "four"}}, f.calls)
	require.Equal(t, 4, p.sent)
	require.Equal(t, 2, p.retried)
	require.Len(t, *waits, 1)
	require.Positive(t, (*waits)[0])

	// A record rejected every time: the error names its line and the
	// code, after maxAttempts calls.
	f = &fakePut{reject: func(_ int, d string) string {
		if d == "three" {
			return "InternalFailure"
		}
		return ""
	}}
	p, waits = newTestPutter(f)
	err := p.run(t.Context(), strings.NewReader("one\ntwo\nthree\nfour\n"), identity)
	require.EqualError(t, err, "1 records not accepted after 3 attempts (InternalFailure ×1): lines 3")
	require.Len(t, f.calls, 3)
	require.Equal(t, 3, p.sent)
	require.Len(t, *waits, 2)
}

func TestPutStopsAtEncryptionFailure(t *testing.T) {
	f := &fakePut{reject: func(int, string) string { return "" }}
	p, _ := newTestPutter(f)
	boom := errors.New("boom")
	err := p.run(t.Context(), strings.NewReader("one\ntwo\nthree\nfour\n"), func(line int, data []byte) (record.Encrypted, error) {
		if line == 3 {
			return record.Encrypted{}, boom
		}
		return identity(line, data)
	})
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "line 3:")
	// The lines before it are sent, it and the ones after are not.
	require.Equal(t, [][]string{{"one", "two"}}, f.calls)
}

func TestRetryDelay(t *testing.T) {
	for attempt := 1; attempt < 20; attempt++ {
		d := retryDelay(attempt)
		full := min(100*time.Millisecond<<(attempt-1), 5*time.Second)
		require.GreaterOrEqual(t, d, full/2)
		require.LessOrEqual(t, d, full)
	}
}

func TestLineList(t *testing.T) {
	var m []entryMeta
	for i := 15; i > 0; i-- {
		m = append(m, entryMeta{line: i})
	}
	require.Equal(t, "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, … (5 more)", lineList(m))
	require.Equal(t, "A ×3, B ×1, C ×1", codeSummary(map[string]int{"C": 1, "A": 3, "B": 1}))
}

// fakeStream is a Kinesis read API over shards held in memory, which
// behaves as AWS does at the end of a closed shard (no next iterator, child
// shards named), or, with emulator set, as moto does (an iterator forever,
// no child shards).
type fakeStream struct {
	shards   map[string]*fakeShard
	listed   []string // shard IDs that ListShards returns, in order
	emulator bool
	gets     []string // shard IDs of GetRecords calls, in order
}

type fakeShard struct {
	id       string
	parents  []string
	closed   bool
	records  []string
	children []string
}

func (f *fakeStream) shardOf(id string) types.Shard {
	s := f.shards[id]
	sh := types.Shard{ShardId: aws.String(id), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1")}}
	if len(s.parents) > 0 {
		sh.ParentShardId = aws.String(s.parents[0])
	}
	if len(s.parents) > 1 {
		sh.AdjacentParentShardId = aws.String(s.parents[1])
	}
	if s.closed {
		sh.SequenceNumberRange.EndingSequenceNumber = aws.String(strconv.Itoa(len(s.records)))
	}
	return sh
}

func (f *fakeStream) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	// Two pages, to exercise NextToken.
	if in.NextToken == nil {
		if aws.ToString(in.StreamName) != "s" {
			return nil, errors.New("ListShards: want StreamName s")
		}
		half := len(f.listed) / 2
		out := &kinesis.ListShardsOutput{NextToken: aws.String("page2")}
		for _, id := range f.listed[:half] {
			out.Shards = append(out.Shards, f.shardOf(id))
		}
		return out, nil
	}
	if in.StreamName != nil || aws.ToString(in.NextToken) != "page2" {
		return nil, errors.New("ListShards: NextToken with StreamName")
	}
	out := &kinesis.ListShardsOutput{}
	for _, id := range f.listed[len(f.listed)/2:] {
		out.Shards = append(out.Shards, f.shardOf(id))
	}
	return out, nil
}

// Iterators are "shard/position".
func (f *fakeStream) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	s, ok := f.shards[aws.ToString(in.ShardId)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("no shard")}
	}
	pos := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeLatest:
		pos = len(s.records)
	case types.ShardIteratorTypeAfterSequenceNumber:
		pos, _ = strconv.Atoi(aws.ToString(in.StartingSequenceNumber))
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%s/%d", s.id, pos))}, nil
}

func (f *fakeStream) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	id, p, _ := strings.Cut(aws.ToString(in.ShardIterator), "/")
	s := f.shards[id]
	f.gets = append(f.gets, id)
	pos, _ := strconv.Atoi(p)
	// Two records per call at most, to make several calls per shard.
	n := min(len(s.records)-pos, 2)
	if in.Limit != nil {
		n = min(n, int(*in.Limit))
	}
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(int64(len(s.records) - pos - n))}
	for i := pos; i < pos+n; i++ {
		out.Records = append(out.Records, types.Record{
			Data: []byte(s.records[i]), PartitionKey: aws.String("pk"), SequenceNumber: aws.String(strconv.Itoa(i + 1)),
		})
	}
	if s.closed && pos+n == len(s.records) && !f.emulator {
		for _, c := range s.children {
			out.ChildShards = append(out.ChildShards, types.ChildShard{ShardId: aws.String(c), ParentShards: f.shards[c].parents})
		}
		return out, nil
	}
	out.NextShardIterator = aws.String(fmt.Sprintf("%s/%d", id, pos+n))
	return out, nil
}

// reshardedStream: shard 0 split into 1 and 2, then 1 and 2 merged into 3;
// shard 4 was open throughout.
func reshardedStream(emulator bool, listed ...string) *fakeStream {
	f := &fakeStream{emulator: emulator, listed: listed, shards: map[string]*fakeShard{
		"shardId-0": {id: "shardId-0", closed: true, records: []string{"0a", "0b", "0c"}, children: []string{"shardId-1", "shardId-2"}},
		"shardId-1": {id: "shardId-1", closed: true, parents: []string{"shardId-0"}, records: []string{"1a", "1b", "1c"}, children: []string{"shardId-3"}},
		"shardId-2": {id: "shardId-2", closed: true, parents: []string{"shardId-0"}, records: []string{"2a"}, children: []string{"shardId-3"}},
		"shardId-3": {id: "shardId-3", parents: []string{"shardId-1", "shardId-2"}, records: []string{"3a", "3b", "3c", "3d", "3e"}},
		"shardId-4": {id: "shardId-4", records: []string{"4a", "4b"}},
	}}
	return f
}

func runTailer(t *testing.T, f *fakeStream, from types.ShardIteratorType, limit int) ([]jsonRecord, *tailer) {
	t.Helper()
	defer func(d time.Duration) { tailMinRound = d }(tailMinRound)
	tailMinRound = 0
	var out bytes.Buffer
	tl := &tailer{
		client: f,
		decrypt: func(_ context.Context, recs []types.Record) error {
			for i := range recs {
				recs[i].EncryptionType = types.EncryptionTypeKms
			}
			return nil
		},
		streamName: aws.String("s"),
		from:       from,
		limit:      limit,
		out:        newRecordWriter(&out),
		warnf:      func(format string, args ...any) { t.Errorf(format, args...) },
	}
	require.NoError(t, tl.run(t.Context()))
	return jsonLines(t, out.String()), tl
}

// order returns the data of recs, and checks that the records of every
// shard come after all those of its parents.
func checkOrder(t *testing.T, f *fakeStream, recs []jsonRecord) []string {
	t.Helper()
	var data []string
	lastOf := map[string]int{}
	firstOf := map[string]int{}
	for i, r := range recs {
		data = append(data, r.Data)
		if _, ok := firstOf[r.ShardID]; !ok {
			firstOf[r.ShardID] = i
		}
		lastOf[r.ShardID] = i
		require.Equal(t, r.ShardID, "shardId-"+r.Data[:1])
	}
	for id, first := range firstOf {
		for _, p := range f.shards[id].parents {
			if last, ok := lastOf[p]; ok {
				require.Less(t, last, first, "%s read before its parent %s was finished", id, p)
			}
		}
	}
	return data
}

func TestTailReshardingAWS(t *testing.T) {
	// As AWS does: ListShards returns every shard, and GetRecords ends a
	// closed shard with no iterator and its children.
	f := reshardedStream(false, "shardId-0", "shardId-1", "shardId-2", "shardId-3", "shardId-4")
	recs, tl := runTailer(t, f, types.ShardIteratorTypeTrimHorizon, 0)
	data := checkOrder(t, f, recs)
	require.ElementsMatch(t, []string{"0a", "0b", "0c", "1a", "1b", "1c", "2a", "3a", "3b", "3c", "3d", "3e", "4a", "4b"}, data)
	require.Equal(t, 14, tl.seen)
	require.Zero(t, tl.failed)

	// Children found only through GetRecords' ChildShards (listed before
	// the resharding).
	f = reshardedStream(false, "shardId-0", "shardId-4")
	recs, _ = runTailer(t, f, types.ShardIteratorTypeTrimHorizon, 0)
	require.Len(t, checkOrder(t, f, recs), 14)
}

func TestTailReshardingEmulator(t *testing.T) {
	// As moto does: closed shards keep returning iterators and no child
	// shards; tail relies on the listing and the closed shards' ending
	// sequence numbers.
	f := reshardedStream(true, "shardId-0", "shardId-1", "shardId-2", "shardId-3", "shardId-4")
	recs, _ := runTailer(t, f, types.ShardIteratorTypeTrimHorizon, 0)
	require.Len(t, checkOrder(t, f, recs), 14)
}

func TestTailLatestAndLimit(t *testing.T) {
	// --from latest: closed shards are skipped, open shards start at their
	// tip: nothing to print, and tail returns once caught up.
	f := reshardedStream(false, "shardId-0", "shardId-1", "shardId-2", "shardId-3", "shardId-4")
	recs, _ := runTailer(t, f, types.ShardIteratorTypeLatest, 0)
	require.Empty(t, recs)
	for _, id := range f.gets {
		require.Contains(t, []string{"shardId-3", "shardId-4"}, id)
	}

	// --limit: exactly that many records, parents first.
	f = reshardedStream(false, "shardId-0", "shardId-1", "shardId-2", "shardId-3", "shardId-4")
	recs, tl := runTailer(t, f, types.ShardIteratorTypeTrimHorizon, 4)
	require.Len(t, recs, 4)
	require.Equal(t, 4, tl.seen)
	checkOrder(t, f, recs)
}

func TestTailExpiredIterator(t *testing.T) {
	f := reshardedStream(false, "shardId-4")
	expired := &expiringStream{fakeStream: f}
	defer func(d time.Duration) { tailMinRound = d }(tailMinRound)
	tailMinRound = 0
	var out bytes.Buffer
	tl := &tailer{
		client:     expired,
		decrypt:    func(context.Context, []types.Record) error { return nil },
		streamName: aws.String("s"),
		from:       types.ShardIteratorTypeTrimHorizon,
		out:        newRecordWriter(&out),
		warnf:      t.Errorf,
	}
	require.NoError(t, tl.run(t.Context()))
	recs := jsonLines(t, out.String())
	require.Len(t, recs, 2, "no record lost or repeated across the expiry")
	require.Equal(t, "4a", recs[0].Data)
	require.Equal(t, "4b", recs[1].Data)
	require.Equal(t, 1, expired.expired)
}

// expiringStream fails the second GetRecords call with an expired
// iterator.
type expiringStream struct {
	*fakeStream
	calls, expired int
}

func (e *expiringStream) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	e.calls++
	if e.calls == 2 {
		e.expired++
		return nil, &types.ExpiredIteratorException{Message: aws.String("expired")}
	}
	// One record per call, so that the expiry falls between records.
	in.Limit = aws.Int32(1)
	return e.fakeStream.GetRecords(ctx, in, optFns...)
}

func TestTailDecryptFailuresReported(t *testing.T) {
	f := reshardedStream(false, "shardId-4")
	var out bytes.Buffer
	var warnings []string
	tl := &tailer{
		client: f,
		decrypt: func(_ context.Context, recs []types.Record) error {
			// The second record of the batch fails.
			recs[1].Data = nil
			return &record.BatchError{Op: "DecryptRecords", Failed: []record.RecordError{{Index: 1, Err: errors.New("no good")}}}
		},
		streamName: aws.String("s"),
		from:       types.ShardIteratorTypeTrimHorizon,
		out:        newRecordWriter(&out),
		warnf:      func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) },
	}
	require.NoError(t, tl.run(t.Context()))
	recs := jsonLines(t, out.String())
	require.Len(t, recs, 1)
	require.Equal(t, "4a", recs[0].Data)
	require.Equal(t, []string{"record 1 (shard shardId-4, sequence number 2) failed to decrypt: no good"}, warnings)
	require.Equal(t, 1, tl.failed)
	require.Equal(t, 2, tl.seen)

	// Any other error of decrypt ends tail.
	tl.decrypt = func(context.Context, []types.Record) error { return errors.New("broken") }
	tl.seen, tl.failed = 0, 0
	require.EqualError(t, tl.run(t.Context()), "broken")
}

func TestReachedEnd(t *testing.T) {
	require.True(t, reachedEnd("", "0"))
	require.True(t, reachedEnd("5", "5"))
	require.True(t, reachedEnd("6", "5"))
	require.False(t, reachedEnd("4", "5"))
	require.False(t, reachedEnd("", "5"))
	require.False(t, reachedEnd("49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692540925702759324208523137515618"))
	require.False(t, reachedEnd("x", "5"))
	require.False(t, reachedEnd("5", ""))
}
