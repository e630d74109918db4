package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse/record"
)

const tailSynopsis = "--stream S (--key-arn ARN... | --any-key) [--from trim-horizon|latest] [--limit N] [--allow-plaintext] [--follow]"

const tailDescription = `
Reads every shard of the Kinesis data stream S, decrypts each record and
prints it as one JSON object per line on standard output:

  {"shardId":"…","sequenceNumber":"…","partitionKey":"…","data":"…","encryptionType":"KMS"}

data is the payload as text if it is valid UTF-8, and otherwise base64 with
"dataEncoding":"base64".

Resharding is followed: a parent shard is read to its end before its child
shards, so the records of one partition key come out in order. Shards are
read in turn, so the records of different shards interleave.

tail stops when every shard is caught up (a read returns no records and the
shard is not behind its tip), or after --limit records; with --follow it keeps
polling until interrupted. --from latest starts after the records already in
the stream and is mostly useful with --follow.

A record that fails to decrypt (not authentic, not encrypted, of a key not
trusted, KMS refusal) is not printed: it is reported on standard error with
its position, shard, sequence number and the reason, and tail exits with
status 1 at the end.
` + keyFlagsHelp

func cmdTail(ctx context.Context, c *cli, args []string) error {
	f, err := parseTailArgs(c, args)
	if err != nil {
		return err
	}
	dec, cfg, keyARNs, err := f.keys.newDecryptor(ctx, c, f.allowPlaintext)
	if err != nil {
		return err
	}
	defer dec.Close()
	t := &tailer{
		client: kinesis.NewFromConfig(cfg),
		decrypt: func(ctx context.Context, recs []types.Record) error {
			err := dec.DecryptRecords(ctx, f.streamName, recs)
			if be, ok := errors.AsType[*record.BatchError](err); ok {
				for i := range be.Failed {
					be.Failed[i].Err = explainKeyError(be.Failed[i].Err, keyARNs)
				}
			}
			return err
		},
		from:   f.from,
		limit:  f.limit,
		follow: f.follow,
		out:    newRecordWriter(c.stdout),
		warnf:  c.warnf,
	}
	t.streamName, t.streamARN = streamRef(f.stream)
	if isTerminal(c.stderr) && !isTerminal(c.stdout) {
		t.progress = newProgress(c.stderr, c.name)
	}
	return t.runCommand(ctx, c)
}

// tailArgs are the arguments of tail.
type tailArgs struct {
	stream         string // as given
	streamName     string // parsed from stream
	from           types.ShardIteratorType
	limit          int
	allowPlaintext bool
	follow         bool
	keys           keyFlags
}

// parseTailArgs parses and checks the arguments of tail.
func parseTailArgs(c *cli, args []string) (*tailArgs, error) {
	fs := newFlagSet(c, tailSynopsis, tailDescription)
	f := &tailArgs{}
	fs.StringVar(&f.stream, "stream", "", "Kinesis data stream name or ARN (required)")
	from := fs.String("from", "trim-horizon", "where to start in each shard: trim-horizon (the oldest record) or latest")
	fs.IntVar(&f.limit, "limit", 0, "stop after this many records (0: no limit)")
	fs.BoolVar(&f.allowPlaintext, "allow-plaintext", false, "print records that are not encrypted, with encryptionType NONE, instead of failing them")
	fs.BoolVar(&f.follow, "follow", false, "keep reading new records until interrupted")
	f.keys.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, usagef("unexpected argument %q", pos[0])
	}
	st, err := kinesisStreamArg(f.stream)
	if err != nil {
		return nil, err
	}
	f.streamName = st.Name
	switch *from {
	case "trim-horizon", "TRIM_HORIZON":
		f.from = types.ShardIteratorTypeTrimHorizon
	case "latest", "LATEST":
		f.from = types.ShardIteratorTypeLatest
	default:
		return nil, usagef("--from %q: want trim-horizon or latest", *from)
	}
	if f.limit < 0 {
		return nil, usagef("--limit must not be negative")
	}
	if err := f.keys.check(); err != nil {
		return nil, err
	}
	return f, nil
}

// runCommand runs t for the tail command and reports its failures.
func (t *tailer) runCommand(ctx context.Context, c *cli) error {
	err := t.run(ctx)
	t.progress.done()
	if err != nil && t.follow && ctx.Err() != nil {
		err = nil // interrupted: the normal end of --follow
	}
	if err != nil {
		return err
	}
	if t.failed > 0 {
		c.warnf("%d of %d records failed to decrypt", t.failed, t.seen)
		return errReported
	}
	return nil
}

// kinesisReadAPI is the part of *kinesis.Client that tail uses.
type kinesisReadAPI interface {
	ListShards(ctx context.Context, params *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, params *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, params *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

// Timing of tail, as variables for tests.
var (
	// tailMinRound is the least time between two reads of one shard:
	// Kinesis allows 5 GetRecords calls per second and shard.
	tailMinRound = 200 * time.Millisecond
	// tailFollowIdle is how long --follow waits when every shard is caught
	// up.
	tailFollowIdle = time.Second
	// tailRelist is how often --follow lists the shards again, to find
	// shards created by resharding where the service does not report child
	// shards.
	tailRelist = 10 * time.Second
)

type shardState int

const (
	shardPending shardState = iota // waiting for its parents
	shardReading
	shardDone
)

// tailShard is the reading state of one shard.
type tailShard struct {
	id       string
	parents  []string
	closed   bool
	ending   string // EndingSequenceNumber of a closed shard, if listed
	state    shardState
	iterType types.ShardIteratorType // where to start
	iterator *string
	lastSeq  string // sequence number of the last record read
	caughtUp bool   // the last read returned nothing and was not behind
}

// tailer reads the shards of a stream, parents before children.
type tailer struct {
	client                kinesisReadAPI
	decrypt               func(context.Context, []types.Record) error
	streamName, streamARN *string
	from                  types.ShardIteratorType
	limit                 int
	follow                bool
	out                   *recordWriter
	warnf                 func(format string, args ...any)
	progress              *progress

	shards map[string]*tailShard
	seen   int // records read, failed ones included
	failed int
}

func (t *tailer) run(ctx context.Context) error {
	t.shards = map[string]*tailShard{}
	if err := t.listShards(ctx, true); err != nil {
		return err
	}
	lastList := time.Now()
	for {
		if err := t.startEligible(ctx); err != nil {
			return err
		}
		reading := t.inState(shardReading)
		if len(reading) == 0 && !t.follow {
			return nil
		}
		roundStart := time.Now()
		for _, sh := range reading {
			if t.limitReached() {
				return nil
			}
			if err := t.poll(ctx, sh); err != nil {
				return err
			}
		}
		if t.limitReached() {
			return nil
		}
		caughtUp := true
		for _, sh := range reading {
			caughtUp = caughtUp && (sh.state == shardDone || sh.caughtUp)
		}
		if caughtUp && !t.anyEligible() && !t.follow {
			return nil
		}
		wait := tailMinRound - time.Since(roundStart)
		if t.follow {
			if time.Since(lastList) >= tailRelist {
				if err := t.listShards(ctx, false); err != nil {
					return err
				}
				lastList = time.Now()
			}
			if caughtUp {
				wait = tailFollowIdle
			}
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}

func (t *tailer) limitReached() bool { return t.limit > 0 && t.seen >= t.limit }

// listShards lists the shards of the stream and tracks the new ones.
func (t *tailer) listShards(ctx context.Context, initial bool) error {
	var token *string
	for {
		in := &kinesis.ListShardsInput{NextToken: token}
		if token == nil {
			in.StreamName, in.StreamARN = t.streamName, t.streamARN
		}
		out, err := t.client.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("ListShards: %w", err)
		}
		for _, s := range out.Shards {
			t.observe(s, initial)
		}
		if out.NextToken == nil {
			return nil
		}
		token = out.NextToken
	}
}

// observe tracks a listed shard, or updates a tracked one.
func (t *tailer) observe(s types.Shard, initial bool) {
	id := aws.ToString(s.ShardId)
	var ending string
	closed := s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
	if closed {
		ending = *s.SequenceNumberRange.EndingSequenceNumber
	}
	if sh, ok := t.shards[id]; ok {
		if closed {
			sh.closed, sh.ending = true, ending
		}
		return
	}
	var parents []string
	for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
		if p != nil && *p != "" {
			parents = append(parents, *p)
		}
	}
	sh := &tailShard{id: id, parents: parents, closed: closed, ending: ending, iterType: types.ShardIteratorTypeTrimHorizon}
	if initial && t.from == types.ShardIteratorTypeLatest {
		// Start after everything already written: closed shards have
		// nothing new, open ones start at their tip.
		if closed {
			sh.state = shardDone
		} else {
			sh.iterType = types.ShardIteratorTypeLatest
		}
	}
	t.shards[id] = sh
}

// track tracks a child shard reported by GetRecords.
func (t *tailer) track(c types.ChildShard) {
	id := aws.ToString(c.ShardId)
	if _, ok := t.shards[id]; ok || id == "" {
		return
	}
	t.shards[id] = &tailShard{id: id, parents: c.ParentShards, iterType: types.ShardIteratorTypeTrimHorizon}
}

// inState returns the shards in state s, by shard ID.
func (t *tailer) inState(s shardState) []*tailShard {
	var r []*tailShard
	for _, sh := range t.shards {
		if sh.state == s {
			r = append(r, sh)
		}
	}
	slices.SortFunc(r, func(a, b *tailShard) int {
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})
	return r
}

// eligible reports whether a pending shard may be read: every parent that
// is tracked has been read to its end. Parents that are not tracked are past
// the stream's retention period.
func (t *tailer) eligible(sh *tailShard) bool {
	for _, p := range sh.parents {
		if ps, ok := t.shards[p]; ok && ps.state != shardDone {
			return false
		}
	}
	return true
}

func (t *tailer) anyEligible() bool {
	for _, sh := range t.shards {
		if sh.state == shardPending && t.eligible(sh) {
			return true
		}
	}
	return false
}

// startEligible gets an iterator for every pending shard whose parents are
// done.
func (t *tailer) startEligible(ctx context.Context) error {
	for _, sh := range t.inState(shardPending) {
		if !t.eligible(sh) {
			continue
		}
		if err := t.getIterator(ctx, sh); err != nil {
			return err
		}
		sh.state = shardReading
	}
	return nil
}

// getIterator gets sh's iterator: after its last record read, or at its
// starting position.
func (t *tailer) getIterator(ctx context.Context, sh *tailShard) error {
	in := &kinesis.GetShardIteratorInput{
		StreamName:        t.streamName,
		StreamARN:         t.streamARN,
		ShardId:           aws.String(sh.id),
		ShardIteratorType: sh.iterType,
	}
	if sh.lastSeq != "" {
		in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
		in.StartingSequenceNumber = aws.String(sh.lastSeq)
	}
	out, err := t.client.GetShardIterator(ctx, in)
	if err != nil {
		return fmt.Errorf("GetShardIterator %s: %w", sh.id, err)
	}
	sh.iterator = out.ShardIterator
	return nil
}

// poll reads the next records of sh and prints them.
func (t *tailer) poll(ctx context.Context, sh *tailShard) error {
	in := &kinesis.GetRecordsInput{ShardIterator: sh.iterator, StreamARN: t.streamARN}
	if t.limit > 0 {
		in.Limit = aws.Int32(int32(min(t.limit-t.seen, 10000)))
	}
	out, err := t.client.GetRecords(ctx, in)
	if err != nil {
		if _, ok := errors.AsType[*types.ExpiredIteratorException](err); ok {
			return t.getIterator(ctx, sh)
		}
		return fmt.Errorf("GetRecords %s: %w", sh.id, err)
	}
	if err := t.emit(ctx, sh, out.Records); err != nil {
		return err
	}
	if n := len(out.Records); n > 0 {
		sh.lastSeq = aws.ToString(out.Records[n-1].SequenceNumber)
	}
	sh.caughtUp = len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0
	if out.NextShardIterator == nil {
		// The end of a closed shard: Kinesis names its children.
		sh.state, sh.iterator = shardDone, nil
		for _, c := range out.ChildShards {
			t.track(c)
		}
		return nil
	}
	sh.iterator = out.NextShardIterator
	if sh.caughtUp && sh.closed && reachedEnd(sh.lastSeq, sh.ending) {
		// Emulators (moto) keep returning iterators at the end of a
		// closed shard; it gets no new records, so it is done.
		sh.state = shardDone
	}
	return nil
}

// reachedEnd reports whether the sequence number last (empty: nothing read)
// is at or after ending.
func reachedEnd(last, ending string) bool {
	e, ok := new(big.Int).SetString(ending, 10)
	if !ok {
		return false
	}
	l := new(big.Int)
	if last != "" {
		if _, ok := l.SetString(last, 10); !ok {
			return false
		}
	}
	return l.Cmp(e) >= 0
}

// emit decrypts and prints records read from sh, and reports those that
// fail.
func (t *tailer) emit(ctx context.Context, sh *tailShard, recs []types.Record) error {
	if len(recs) == 0 {
		return nil
	}
	failed := map[int]error{}
	if err := t.decrypt(ctx, recs); err != nil {
		be, ok := errors.AsType[*record.BatchError](err)
		if !ok {
			return err
		}
		for _, f := range be.Failed {
			failed[f.Index] = f.Err
		}
	}
	for i, r := range recs {
		idx := t.seen + i
		if err, bad := failed[i]; bad {
			t.failed++
			t.warnf("record %d (shard %s, sequence number %s) failed to decrypt: %v", idx, sh.id, aws.ToString(r.SequenceNumber), err)
			continue
		}
		jr := jsonRecord{
			ShardID:        sh.id,
			SequenceNumber: aws.ToString(r.SequenceNumber),
			PartitionKey:   aws.ToString(r.PartitionKey),
			EncryptionType: string(r.EncryptionType),
		}
		jr.setData(r.Data)
		if err := t.out.write(&jr); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
	t.seen += len(recs)
	t.progress.update(t.seen)
	return nil
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
