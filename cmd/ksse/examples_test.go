package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/record"
)

// TestExamplesProducerConsumer builds examples/producer and
// examples/consumer and runs them against moto through the SDK's standard
// configuration (AWS_ENDPOINT_URL), as their doc comments say: the consumer
// prints what the producer sent.
func TestExamplesProducerConsumer(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if emulatortest.InCI() {
			t.Fatalf("go tool not found: %v", err)
		}
		t.Skipf("go tool not found: %v", err)
	}
	f := newMotoFixture(t, 2) // sets the AWS environment that the binaries inherit

	bin := t.TempDir()
	build := exec.CommandContext(t.Context(), goTool, "build", "-o", bin+string(filepath.Separator),
		"github.com/ksse-go/ksse/examples/producer", "github.com/ksse-go/ksse/examples/consumer")
	// The go tool itself need not run in FIPS 140-only mode (it seeds its
	// random generator slowly there); the examples it builds do run in the
	// test's mode.
	build.Env = append(os.Environ(), "GODEBUG=")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	runBin := func(name string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), filepath.Join(bin, name), args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code = cmd.ProcessState.ExitCode()
		if _, ok := err.(*exec.ExitError); !ok {
			require.NoError(t, err)
		}
		t.Logf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), code, o.String(), e.String())
		return o.String(), e.String(), code
	}

	sent, _, code := runBin("producer", "-stream", f.stream, "-key-id", f.keyARN, "-count", "7")
	require.Equal(t, 0, code)
	require.Contains(t, sent, "7 records, 1 KMS calls\n")
	// "sent customer-1 {"order":1,"cents":250} to shardId-000000000001"
	sentRe := regexp.MustCompile(`(?m)^sent (\S+) (\S+) to (\S+)$`)
	var want []string
	for _, m := range sentRe.FindAllStringSubmatch(sent, -1) {
		want = append(want, m[3]+" "+m[1]+" "+m[2])
	}
	require.Len(t, want, 7)

	// Kinesis is at least once: when moto closes a connection after it
	// stored a PutRecords batch (about one call in 25,000), the SDK's retry
	// stores the batch again. Count what the stream holds.
	stored := len(f.rawRecords(t))
	require.Contains(t, []int{7, 14}, stored, "the batch, once or twice")

	got, _, code := runBin("consumer", "-stream", f.stream, "-key-arn", f.keyARN)
	require.Equal(t, 0, code)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	require.Len(t, lines, stored, "every stored record printed")
	slices.Sort(lines)
	slices.Sort(want)
	require.Equal(t, want, slices.Compact(lines))

	// On the wire, none of it is in clear.
	for _, rec := range f.rawRecords(t) {
		require.NotContains(t, string(rec.Data), "order")
		require.NotContains(t, string(rec.Data), "customer-")
	}

	// A record that is not encrypted is reported, not printed, and the
	// consumer fails.
	_, err = f.kinesis.PutRecord(t.Context(), &kinesis.PutRecordInput{StreamName: aws.String(f.stream), PartitionKey: aws.String("p"), Data: []byte("plaintext-secret")})
	require.NoError(t, err)
	got, errOut, code := runBin("consumer", "-stream", f.stream, "-key-arn", f.keyARN)
	require.Equal(t, 1, code)
	require.NotContains(t, got+errOut, "plaintext-secret")
	require.Contains(t, errOut, "skipped: "+record.ErrNotEncrypted.Error())
	require.Len(t, strings.Split(strings.TrimSpace(got), "\n"), stored)

	// Strict mode: the records of another key are skipped.
	other, err := f.kms.CreateKey(t.Context(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	got, errOut, code = runBin("consumer", "-stream", f.stream, "-key-arn", aws.ToString(other.KeyMetadata.Arn))
	require.Equal(t, 1, code)
	require.Empty(t, got)
	require.Equal(t, stored+1, strings.Count(errOut, "skipped: "))

	// Usage errors exit 2.
	_, _, code = runBin("producer", "-stream", f.stream)
	require.Equal(t, 2, code)
	_, _, code = runBin("consumer")
	require.Equal(t, 2, code)
	_, _, code = runBin("consumer", "-stream", f.stream)
	require.Equal(t, 2, code)
	_, errOut, code = runBin("consumer", "-stream", f.stream, "-key-arn", "alias/orders")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not a key ARN")
}
