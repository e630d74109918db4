package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/record"
)

// pipeRun runs ksse in process with its stdin fed from in by a goroutine
// through a pipe, and its stdout read through a pipe, as a shell pipeline
// would.
func pipeRun(t *testing.T, in string, args ...string) result {
	t.Helper()
	inR, inW := io.Pipe()
	go func() {
		// Write in small pieces, so that put sees lines split across
		// reads.
		for s := in; len(s) > 0; {
			n := min(len(s), 7)
			if _, err := io.WriteString(inW, s[:n]); err != nil {
				return
			}
			s = s[n:]
		}
		inW.Close()
	}()
	outR, outW := io.Pipe()
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(outR)
		got <- string(b)
	}()
	var stderr bytes.Buffer
	code := run(t.Context(), args, inR, outW, &stderr)
	outW.Close()
	inR.Close()
	r := result{code, <-got, stderr.String()}
	t.Logf("ksse %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// rawRecords reads every record of a stream as it is on the wire.
func (f *motoFixture) rawRecords(t *testing.T) []types.Record {
	t.Helper()
	ctx := t.Context()
	shards, err := f.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(f.stream)})
	require.NoError(t, err)
	var recs []types.Record
	for _, sh := range shards.Shards {
		it, err := f.kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(f.stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		require.NoError(t, err)
		out, err := f.kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		require.NoError(t, err)
		recs = append(recs, out.Records...)
	}
	return recs
}

func TestPutTailRoundTrip(t *testing.T) {
	f := newMotoFixture(t, 2)

	// Lines: text, UTF-8, an empty line, a CRLF line, bytes that are not
	// UTF-8, a last line without a newline.
	want := []string{"hello", "wörld ☃", "", "crlf", "caf\xe9 \xff", `{"json":true}`}
	for i := range 40 {
		want = append(want, fmt.Sprintf("record number %d", i+1))
	}
	want = append(want, "no newline at the end")
	var in strings.Builder
	for i, l := range want {
		in.WriteString(l)
		switch {
		case l == "crlf":
			in.WriteString("\r\n")
		case i < len(want)-1:
			in.WriteString("\n")
		}
	}

	r := pipeRun(t, in.String(), "put", "--stream", f.stream, "--key-id", f.keyARN)
	require.Equal(t, exitOK, r.code)
	require.Contains(t, r.stderr, fmt.Sprintf("ksse put: sent %d records to %s", len(want), f.stream))
	require.Contains(t, r.stderr, "KMS GenerateDataKey calls: 1")
	require.Empty(t, r.stdout)

	// On the wire: envelopes only, no plaintext, the outbound partition key.
	raw := f.rawRecords(t)
	require.Len(t, raw, len(want))
	shards := map[string]bool{}
	for _, rec := range raw {
		require.Equal(t, record.OutboundPartitionKey, aws.ToString(rec.PartitionKey))
		require.True(t, envelope.IsEnvelope(rec.Data))
		require.NotContains(t, string(rec.Data), "record number")
		require.NotContains(t, string(rec.Data), "hello")
	}

	r = pipeRun(t, "", "tail", "--stream", f.stream, "--key-arn", f.keyARN)
	require.Equal(t, exitOK, r.code)
	got := jsonLines(t, r.stdout)
	require.Len(t, got, len(want))
	for _, g := range got {
		require.Equal(t, "KMS", g.EncryptionType)
		require.NotEmpty(t, g.SequenceNumber)
		require.Nil(t, g.Index)
		shards[g.ShardID] = true
		line, err := strconv.Atoi(g.PartitionKey) // the default partition key is the line number
		require.NoError(t, err)
		w := want[line-1]
		if g.DataEncoding == "base64" {
			b, err := base64.StdEncoding.DecodeString(g.Data)
			require.NoError(t, err)
			require.Equal(t, w, string(b), "line %d", line)
			require.Equal(t, "caf\xe9 \xff", w, "only the non-UTF-8 line is base64")
		} else {
			require.Empty(t, g.DataEncoding)
			require.Equal(t, w, g.Data, "line %d", line)
		}
	}
	require.Len(t, shards, 2, "records of 47 partition keys spread over both shards")

	// --limit stops early.
	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", f.keyARN, "--limit", "5")
	require.Equal(t, exitOK, r.code)
	require.Len(t, jsonLines(t, r.stdout), 5)

	// A fixed partition key: one shard, in order, after the first records.
	var ordered strings.Builder
	for i := range 30 {
		fmt.Fprintf(&ordered, "ordered %02d\n", i)
	}
	r = pipeRun(t, ordered.String(), "put", "--stream", f.stream, "--key-id", f.keyARN, "--partition-key", "customer-42")
	require.Equal(t, exitOK, r.code)
	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", f.keyARN)
	require.Equal(t, exitOK, r.code)
	var seq []string
	shard := ""
	for _, g := range jsonLines(t, r.stdout) {
		if g.PartitionKey == "customer-42" {
			seq = append(seq, g.Data)
			require.True(t, shard == "" || shard == g.ShardID)
			shard = g.ShardID
		}
	}
	require.Len(t, seq, 30)
	for i, s := range seq {
		require.Equal(t, fmt.Sprintf("ordered %02d", i), s)
	}
}

func TestTailReportsFailures(t *testing.T) {
	f := newMotoFixture(t, 1)
	ctx := t.Context()
	r := runCLI(t, strings.NewReader("good-1\ngood-2\n"), "put", "--stream", f.stream, "--key-id", f.keyARN)
	require.Equal(t, exitOK, r.code)

	// A plaintext record, and a copy of good-1's envelope with one bit
	// flipped in its body.
	_, err := f.kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(f.stream), PartitionKey: aws.String("pk-plain"), Data: []byte("plaintext-secret")})
	require.NoError(t, err)
	raw := f.rawRecords(t)
	require.Len(t, raw, 3)
	tampered := bytes.Clone(raw[0].Data)
	tampered[envelope.HeaderSize+4] ^= 0x10
	_, err = f.kinesis.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String(f.stream), PartitionKey: aws.String("ksse"), Data: tampered})
	require.NoError(t, err)
	raw = f.rawRecords(t)
	require.Len(t, raw, 4)

	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", f.keyARN)
	require.Equal(t, exitFailure, r.code)
	got := jsonLines(t, r.stdout)
	require.Len(t, got, 2)
	require.Equal(t, "good-1", got[0].Data)
	require.Equal(t, "good-2", got[1].Data)
	for i, rec := range raw[2:] {
		require.Contains(t, r.stderr, fmt.Sprintf("ksse tail: record %d (shard shardId-000000000000, sequence number %s) failed to decrypt: ", i+2, aws.ToString(rec.SequenceNumber)))
	}
	require.Contains(t, r.stderr, record.ErrNotEncrypted.Error())
	require.Contains(t, r.stderr, envelope.ErrOpen.Error())
	require.Contains(t, r.stderr, "ksse tail: 2 of 4 records failed to decrypt")
	require.NotContains(t, r.stdout+r.stderr, "plaintext-secret")

	// With --allow-plaintext the plaintext record is printed as such; the
	// tampered one still fails.
	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", f.keyARN, "--allow-plaintext")
	require.Equal(t, exitFailure, r.code)
	got = jsonLines(t, r.stdout)
	require.Len(t, got, 3)
	require.Equal(t, jsonRecord{ShardID: "shardId-000000000000", SequenceNumber: aws.ToString(raw[2].SequenceNumber),
		PartitionKey: "pk-plain", Data: "plaintext-secret", EncryptionType: "NONE"}, got[2])
	require.Contains(t, r.stderr, "ksse tail: 1 of 4 records failed to decrypt")

	// Strict mode with another key: nothing decrypts, and the message says
	// what --key-arn has to do with it. Each key is given to KMS as KeyId:
	// moto answers NotFoundException for a key that does not exist, and
	// AccessDeniedException without a message for one that is not the
	// blob's (AWS: IncorrectKeyException), which both mean "not of a
	// --key-arn key".
	other, err := f.kms.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	otherARN := aws.ToString(other.KeyMetadata.Arn)
	const missingARN = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
	for _, tc := range []struct {
		keyARNs []string
		want    string
	}{
		{[]string{missingARN}, "KMS does not find a --key-arn key: "},
		{[]string{otherARN}, "its data key is not of a --key-arn key: "},
		{[]string{otherARN, missingARN}, "KMS does not find a --key-arn key: "},
	} {
		args := []string{"tail", "--stream", f.stream}
		for _, k := range tc.keyARNs {
			args = append(args, "--key-arn", k)
		}
		r = runCLI(t, nil, args...)
		require.Equal(t, exitFailure, r.code)
		require.Empty(t, r.stdout)
		require.Contains(t, r.stderr, "ksse tail: 4 of 4 records failed to decrypt")
		// The two encrypted records (of f.keyARN) fail because of --key-arn.
		for _, rec := range []int{0, 1} {
			require.Contains(t, r.stderr, fmt.Sprintf("ksse tail: record %d (shard shardId-000000000000, sequence number %s) failed to decrypt: %s", rec, aws.ToString(raw[rec].SequenceNumber), tc.want))
		}
	}

	// And the right key (as KMS reports it: the ARN) in strict mode works.
	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", f.keyARN, "--limit", "2")
	require.Equal(t, exitOK, r.code)
	require.Len(t, jsonLines(t, r.stdout), 2)

	// So does the key given by its ID, alias name or alias ARN: resolved to
	// the key ARN with DescribeKey.
	alias := "alias/" + f.stream
	_, err = f.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(f.keyARN)})
	require.NoError(t, err)
	keyID := f.keyARN[strings.LastIndex(f.keyARN, "/")+1:]
	aliasARN := strings.TrimSuffix(f.keyARN, "key/"+keyID) + alias
	for _, id := range []string{keyID, alias, aliasARN} {
		r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", id, "--limit", "2")
		require.Equal(t, exitOK, r.code, id)
		require.Len(t, jsonLines(t, r.stdout), 2)
	}
	// An alias that does not exist is an error before reading.
	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", alias+"-missing")
	require.Equal(t, exitFailure, r.code)
	require.Empty(t, r.stdout)
	require.Equal(t, fmt.Sprintf("ksse tail: --key-arn %q: KMS has no such key or alias\n", alias+"-missing"), r.stderr)

	// --any-key reads every encrypted record, with a warning.
	r = runCLI(t, nil, "tail", "--stream", f.stream, "--any-key", "--limit", "2")
	require.Equal(t, exitOK, r.code)
	require.Len(t, jsonLines(t, r.stdout), 2)
	require.Contains(t, r.stderr, "ksse tail: warning: --any-key: ")
}

// TestPutMissingStream checks that put finds out that the stream does not
// exist before it asks KMS for a data key.
func TestPutMissingStream(t *testing.T) {
	srv := emulatortest.Shared(t, emulator.Moto)
	f := newKMSFixture(t) // KMS on kmstest, which counts the calls
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL())
	r := runCLI(t, strings.NewReader("one\ntwo\n"), "put", "--stream", "ksse-cli-missing", "--key-id", f.keyARN)
	require.Equal(t, exitFailure, r.code)
	require.Equal(t, "ksse put: stream ksse-cli-missing does not exist (DescribeStreamSummary): nothing sent\n", r.stderr)
	require.Zero(t, f.kms.Calls(""), "no KMS call")
}

// TestPutErrorBeforeSummary checks that put reports its error first, then
// what it did.
func TestPutErrorBeforeSummary(t *testing.T) {
	f := newMotoFixture(t, 1)
	in := "first\n" + strings.Repeat("x", record.DefaultMaxRecordSize) + "\nthird\n"
	r := runCLI(t, strings.NewReader(in), "put", "--stream", f.stream, "--key-id", f.keyARN)
	require.Equal(t, exitFailure, r.code)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	require.Len(t, lines, 2)
	require.Regexp(t, `^ksse put: line 2: .* \(lines before it were sent, it and later lines were not\)$`, lines[0])
	require.True(t, strings.HasPrefix(lines[1], "ksse put: sent 1 records to "+f.stream+": "), lines[1])
	require.Len(t, f.rawRecords(t), 1)
}

func TestTailFollowStopsOnCancel(t *testing.T) {
	f := newMotoFixture(t, 1)
	r := runCLI(t, strings.NewReader("one\n"), "put", "--stream", f.stream, "--key-id", f.keyARN)
	require.Equal(t, exitOK, r.code)

	ctx, cancel := context.WithCancel(t.Context())
	outR, outW := io.Pipe()
	done := make(chan int)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"tail", "--stream", f.stream, "--key-arn", f.keyARN, "--follow"}, strings.NewReader(""), outW, &stderr)
		outW.Close()
	}()
	dec := newLineReader(outR)
	require.Equal(t, "one", dec.next(t).Data)

	// A record written while tail follows shows up.
	r = runCLI(t, strings.NewReader("two\n"), "put", "--stream", f.stream, "--key-id", f.keyARN)
	require.Equal(t, exitOK, r.code)
	require.Equal(t, "two", dec.next(t).Data)

	cancel()
	require.Equal(t, exitOK, <-done, stderr.String())
}

// lineReader decodes JSON lines as they come.
type lineReader struct{ dec *json.Decoder }

func newLineReader(r io.Reader) *lineReader { return &lineReader{dec: json.NewDecoder(r)} }

func (l *lineReader) next(t *testing.T) jsonRecord {
	t.Helper()
	var rec jsonRecord
	require.NoError(t, l.dec.Decode(&rec))
	return rec
}
