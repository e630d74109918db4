package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/ksse-go/ksse/record"
)

const putSynopsis = "--stream S --key-id K [--routing-key R] [--partition-key P] [--max-attempts N] < LINES"

const putDescription = `
Reads standard input, one record per line (the newline, and a carriage return
before it, are not part of the record), encrypts each record under a data key
of the KMS key K, and sends the records to the Kinesis data stream S with
PutRecords, in batches of at most 500 records and 5 MiB.

The partition key of every record is P if given (all records then go to one
shard, in order), and otherwise the record's line number (1, 2, ...), which
spreads records over the shards. On the wire each record's partition key is
hidden and its ExplicitHashKey routes it to the shard its plaintext partition
key would go to: the MD5 of the partition key, which anyone can compute for
a guessed key (a user ID, an email). With --routing-key R, an HMAC_256 KMS
key, the ExplicitHashKey is instead an HMAC of the partition key under a
secret of the stream that only holders of R can compute (one GenerateMac per
stream and 5 minutes): every producer given R routes a partition key to the
same shard, which is not the shard plaintext records of that key go to.

Records that Kinesis rejects (throttling, internal errors) are sent again, up
to --max-attempts times in all, with a growing delay; a record retried may
land after records of later lines. A line that cannot be encrypted (too
large for a Kinesis record, or a KMS error) stops the command: the lines
before it are sent, it and the lines after it are not.

Before it asks KMS for a data key, put checks that S exists with Kinesis
DescribeStreamSummary (skipped if the credentials may not call it).

K is the key to encrypt under, in any form KMS takes: key ID, key ARN, alias
name (alias/NAME) or alias ARN. Readers name the keys they trust instead:
tail and decrypt take --key-arn, and resolve an ID or alias to the key ARN
that KMS reports for each record.

A summary goes to standard error, after the error if there is one: records,
bytes, batches, retries, KMS calls. On a terminal a progress line is shown
during long runs.`

// maxLine bounds the bytes read for one line: a longer line cannot be a
// record of even the largest Kinesis stream.
const maxLine = record.MaxRecordSizeLimit + 1

func cmdPut(ctx context.Context, c *cli, args []string) error {
	fs := newFlagSet(c, putSynopsis, putDescription)
	stream := fs.String("stream", "", "Kinesis data stream name or ARN (required)")
	keyID := fs.String("key-id", "", "KMS key to encrypt under: key ID, key ARN, alias name or alias ARN (required)")
	partitionKey := fs.String("partition-key", "", "partition key of every record (default: the line number)")
	maxAttempts := fs.Int("max-attempts", 5, "attempts per record before giving up on records Kinesis rejects")
	routingKey := fs.String("routing-key", "", "HMAC_256 KMS key for keyed routing: ExplicitHashKey = HMAC of the partition key, not its MD5 (optional)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q: records are read from standard input", pos[0])
	}
	st, err := kinesisStreamArg(*stream)
	if err != nil {
		return err
	}
	if *keyID == "" {
		return usagef("--key-id is required")
	}
	if pk := *partitionKey; pk != "" && (!utf8.ValidString(pk) || utf8.RuneCountInString(pk) > record.MaxPartitionKeyLength) {
		return usagef("--partition-key: must be valid UTF-8 of 1 to %d characters", record.MaxPartitionKeyLength)
	}
	if *maxAttempts < 1 {
		return usagef("--max-attempts must be at least 1")
	}

	cfg, err := c.loadConfig(ctx)
	if err != nil {
		return err
	}
	kc := kinesis.NewFromConfig(cfg)
	p := &putter{
		client:      kc,
		maxAttempts: *maxAttempts,
	}
	p.streamName, p.streamARN = streamRef(*stream)
	if err := checkStream(ctx, kc, p.streamName, p.streamARN); err != nil {
		return err
	}
	enc, err := record.NewEncryptor(kms.NewFromConfig(cfg), *keyID, func(o *record.EncryptorOptions) {
		o.RoutingKey = *routingKey
	})
	if err != nil {
		return err
	}
	defer enc.Close()
	if isTerminal(c.stderr) {
		p.progress = newProgress(c.stderr, c.name)
	}
	err = p.run(ctx, c.stdin, func(line int, data []byte) (record.Encrypted, error) {
		pk := *partitionKey
		if pk == "" {
			pk = strconv.Itoa(line)
		}
		return enc.Encrypt(ctx, st.Name, pk, data)
	})
	p.progress.done()
	if err != nil {
		c.warnf("%v", err) // the error first, then what was done
	}
	c.warnf("sent %d records to %s: %d bytes of payload, %d bytes encrypted; batches: %d, PutRecords calls: %d, records retried: %d; KMS GenerateDataKey calls: %d",
		p.sent, st.Name, p.plainBytes, p.wireBytes, p.batches, p.calls, p.retried, enc.Stats().KMSCalls)
	if err != nil {
		return errReported
	}
	return nil
}

// describeStreamAPI is the part of *kinesis.Client that checkStream uses.
type describeStreamAPI interface {
	DescribeStreamSummary(ctx context.Context, params *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

// checkStream fails if the stream does not exist, before put asks KMS for
// a data key. Credentials that may not describe the stream skip the check.
func checkStream(ctx context.Context, client describeStreamAPI, name, arn *string) error {
	_, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name, StreamARN: arn})
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*types.ResourceNotFoundException](err); ok {
		return fmt.Errorf("stream %s does not exist (DescribeStreamSummary): nothing sent", aws.ToString(name)+aws.ToString(arn))
	}
	if ae, ok := errors.AsType[smithy.APIError](err); ok && ae.ErrorCode() == "AccessDeniedException" {
		return nil
	}
	return fmt.Errorf("DescribeStreamSummary: %w", err)
}

// putRecordsAPI is the part of *kinesis.Client that put uses.
type putRecordsAPI interface {
	PutRecords(ctx context.Context, params *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
}

// putter batches encrypted records into PutRecords calls.
type putter struct {
	client                putRecordsAPI
	streamName, streamARN *string
	maxAttempts           int
	// sleep waits before a retry; nil means a real, ctx-aware sleep.
	sleep    func(ctx context.Context, d time.Duration) error
	progress *progress

	batch      []types.PutRecordsRequestEntry
	batchMeta  []entryMeta // of each entry of batch
	batchBytes int

	sent, batches, calls, retried int
	plainBytes, wireBytes         int64
}

// run reads lines from r, encrypts each with encrypt and sends them.
func (p *putter) run(ctx context.Context, r io.Reader, encrypt func(line int, data []byte) (record.Encrypted, error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for line := 1; ; line++ {
		data, err := readLine(br, buf[:0])
		buf = data
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		rec, err := encrypt(line, data)
		if err != nil {
			// Send the lines before this one, so that the outcome is
			// simple: lines 1 to line-1 sent, the rest not.
			if ferr := p.flush(ctx); ferr != nil {
				return ferr
			}
			return fmt.Errorf("line %d: %w (lines before it were sent, it and later lines were not)", line, err)
		}
		size := len(rec.Data) + len(rec.PartitionKey)
		if len(p.batch) == record.MaxPutRecordsEntries || p.batchBytes+size > record.DefaultMaxPutRecordsSize {
			if err := p.flush(ctx); err != nil {
				return err
			}
		}
		p.batch = append(p.batch, types.PutRecordsRequestEntry{
			Data:            rec.Data,
			PartitionKey:    aws.String(rec.PartitionKey),
			ExplicitHashKey: aws.String(rec.ExplicitHashKey),
		})
		p.batchMeta = append(p.batchMeta, entryMeta{line: line, plain: len(data)})
		p.batchBytes += size
	}
	return p.flush(ctx)
}

// readLine appends the next line of br, without its "\n" or "\r\n", to buf.
// It returns io.EOF only when there is no more input at all.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return buf[:0], fmt.Errorf("longer than %d bytes, the largest Kinesis record", record.MaxRecordSizeLimit)
		}
		switch {
		case err == nil:
			buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r"))
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(buf) > 0:
			return bytes.TrimSuffix(buf, []byte("\r")), nil
		default:
			return buf[:0], err
		}
	}
}

// flush sends the current batch, retrying the records that Kinesis rejects.
func (p *putter) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	pending, meta := p.batch, p.batchMeta
	p.batches++
	for attempt := 1; ; attempt++ {
		out, err := p.client.PutRecords(ctx, &kinesis.PutRecordsInput{
			StreamName: p.streamName,
			StreamARN:  p.streamARN,
			Records:    pending,
		})
		p.calls++
		if err != nil {
			return fmt.Errorf("PutRecords: %w", err)
		}
		if len(out.Records) != len(pending) {
			return fmt.Errorf("PutRecords: %d results for %d records", len(out.Records), len(pending))
		}
		var failed []types.PutRecordsRequestEntry
		var failedMeta []entryMeta
		codes := map[string]int{}
		for i, r := range out.Records {
			if r.ErrorCode == nil {
				p.sent++
				p.plainBytes += int64(meta[i].plain)
				p.wireBytes += int64(len(pending[i].Data))
				continue
			}
			failed = append(failed, pending[i])
			failedMeta = append(failedMeta, meta[i])
			codes[*r.ErrorCode]++
		}
		p.progress.update(p.sent)
		if len(failed) == 0 {
			break
		}
		if attempt == p.maxAttempts {
			return fmt.Errorf("%d records not accepted after %d attempts (%s): lines %s", len(failed), attempt, codeSummary(codes), lineList(failedMeta))
		}
		p.retried += len(failed)
		if err := p.wait(ctx, retryDelay(attempt)); err != nil {
			return err
		}
		pending, meta = failed, failedMeta
	}
	p.batch, p.batchMeta, p.batchBytes = p.batch[:0], p.batchMeta[:0], 0
	return nil
}

func (p *putter) wait(ctx context.Context, d time.Duration) error {
	if p.sleep != nil {
		return p.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryDelay is the wait before retry number attempt (from 1): exponential
// from 100 ms, capped at 5 s, with full jitter in its upper half.
func retryDelay(attempt int) time.Duration {
	d := min(100*time.Millisecond<<(attempt-1), 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// codeSummary formats error codes and their counts, most frequent first.
func codeSummary(codes map[string]int) string {
	keys := make([]string, 0, len(codes))
	for k := range codes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if codes[keys[i]] != codes[keys[j]] {
			return codes[keys[i]] > codes[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, codes[k])
	}
	return strings.Join(parts, ", ")
}

// entryMeta describes an entry of a batch.
type entryMeta struct {
	line  int // line number
	plain int // payload size
}

// lineList formats the line numbers of entries, at most 10 of them.
func lineList(meta []entryMeta) string {
	lines := make([]int, len(meta))
	for i, m := range meta {
		lines[i] = m.line
	}
	slices.Sort(lines)
	var b strings.Builder
	for i, l := range lines {
		if i == 10 {
			fmt.Fprintf(&b, ", … (%d more)", len(lines)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(l))
	}
	return b.String()
}

// progress shows a progress line on a terminal, at most once a second and
// only after the first second.
type progress struct {
	w     io.Writer
	name  string
	start time.Time
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, name string) *progress {
	now := time.Now()
	return &progress{w: w, name: name, start: now, last: now}
}

// update shows n records done. A nil progress does nothing.
func (p *progress) update(n int) {
	if p == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < time.Second {
		return
	}
	p.last = now
	p.shown = true
	fmt.Fprintf(p.w, "\r\033[K%s: %d records, %s", p.name, n, now.Sub(p.start).Round(time.Second))
}

// done clears the progress line. A nil progress does nothing.
func (p *progress) done() {
	if p == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
}
