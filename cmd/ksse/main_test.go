package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

func TestMain(m *testing.M) { emulatortest.Main(m) }

// awsEnv points the standard AWS configuration of this process at endpoint
// (every service) through the environment, with static test credentials,
// and hides the developer's own configuration. An empty endpoint leaves no
// endpoint configured.
func awsEnv(t *testing.T, endpoint string) {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "missing")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL":            endpoint,
		"AWS_ENDPOINT_URL_KINESIS":    "",
		"AWS_ENDPOINT_URL_KMS":        "",
		"AWS_REGION":                  emulator.Region,
		"AWS_DEFAULT_REGION":          "",
		"AWS_ACCESS_KEY_ID":           emulator.AccessKeyID,
		"AWS_SECRET_ACCESS_KEY":       emulator.SecretAccessKey,
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             missing,
		"AWS_SHARED_CREDENTIALS_FILE": missing,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}

// result is the outcome of one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs ksse in process with args and stdin.
func runCLI(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, stdin, &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("ksse %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// jsonLines decodes the JSON lines of out.
func jsonLines(t *testing.T, out string) []jsonRecord {
	t.Helper()
	var recs []jsonRecord
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	for dec.More() {
		var r jsonRecord
		require.NoError(t, dec.Decode(&r))
		recs = append(recs, r)
	}
	return recs
}

// motoFixture is a moto server with a KMS key and a stream.
type motoFixture struct {
	srv     *emulator.Server
	kinesis *kinesis.Client
	kms     *kms.Client
	keyARN  string
	stream  string
}

// newMotoFixture creates a KMS key and a stream of the given number of
// shards on the shared moto server, and points the AWS configuration of the
// process at it.
func newMotoFixture(t *testing.T, shards int) *motoFixture {
	t.Helper()
	srv := emulatortest.Shared(t, emulator.Moto)
	awsEnv(t, srv.URL())
	cfg := srv.AWSConfig()
	f := &motoFixture{
		srv:     srv,
		kinesis: kinesis.NewFromConfig(cfg),
		kms:     kms.NewFromConfig(cfg),
		stream:  emulator.UniqueName("ksse-cli"),
	}
	ctx := t.Context()
	key, err := f.kms.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	f.keyARN = aws.ToString(key.KeyMetadata.Arn)
	_, err = f.kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(f.stream), ShardCount: aws.Int32(int32(shards))})
	require.NoError(t, err)
	w := kinesis.NewStreamExistsWaiter(f.kinesis, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, time.Second
	})
	require.NoError(t, w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(f.stream)}, 30*time.Second))
	t.Cleanup(func() {
		_, _ = f.kinesis.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(f.stream)})
	})
	return f
}

func TestUsage(t *testing.T) {
	awsEnv(t, "http://127.0.0.1:1") // never contacted
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{nil, "Usage: ksse COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"put", "--key-id", "k"}, "--stream is required"},
		{[]string{"put", "--stream", "s"}, "--key-id is required"},
		{[]string{"put", "--stream", "no spaces allowed", "--key-id", "k"}, "not a valid Kinesis stream name"},
		{[]string{"put", "--stream", "s", "--key-id", "k", "extra"}, `unexpected argument "extra"`},
		{[]string{"put", "--stream", "s", "--key-id", "k", "--max-attempts", "0"}, "--max-attempts"},
		{[]string{"put", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"put", "--stream", "s", "--key-id", "k", "--partition-key", strings.Repeat("x", 257)}, "--partition-key"},
		{[]string{"tail"}, "--stream is required"},
		{[]string{"tail", "--stream", "s"}, "name the KMS keys to trust with --key-arn ARN"},
		{[]string{"tail", "--stream", "s", "--any-key", "--key-arn", "alias/k"}, "--any-key and --key-arn exclude each other"},
		{[]string{"decrypt", "--stream", "s"}, "name the KMS keys to trust with --key-arn ARN"},
		{[]string{"tail", "--stream", "s", "--from", "yesterday"}, `--from "yesterday"`},
		{[]string{"tail", "--stream", "s", "--limit", "-1"}, "--limit"},
		{[]string{"tail", "--stream", "s", "--limit", "many"}, `invalid value "many"`},
		{[]string{"decrypt", "file"}, "--stream is required"},
		{[]string{"decrypt", "--stream", "s", "--any-key", "a", "b"}, "too many arguments"},
		{[]string{"decrypt", "--firehose", "--stream", "bad name"}, "not a valid Firehose delivery stream"},
		{[]string{"inspect", "a", "b"}, "too many arguments"},
		{[]string{"demo", "--records", "0"}, "--records"},
		{[]string{"demo", "--embedded", "--key-id", "k"}, "--embedded"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			require.Equal(t, exitUsage, r.code)
			require.Contains(t, r.stderr, tc.want)
			require.Empty(t, r.stdout)
			require.NotContains(t, r.stderr, "Flags:", "a usage error does not print the whole help")
		})
	}
}

// TestUsageFlagError checks that a flag the flag package cannot parse is
// reported like the other usage errors: one line, then where to find help.
func TestUsageFlagError(t *testing.T) {
	awsEnv(t, "http://127.0.0.1:1") // never contacted
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "--bogus"}, "ksse put: flag provided but not defined: -bogus\nRun 'ksse put --help' for usage.\n"},
		{[]string{"tail", "--stream", "s", "--limit", "many"}, "ksse tail: invalid value \"many\" for flag -limit: parse error\nRun 'ksse tail --help' for usage.\n"},
		{[]string{"decrypt", "--stream"}, "ksse decrypt: flag needs an argument: -stream\nRun 'ksse decrypt --help' for usage.\n"},
		{[]string{"inspect", "-x"}, "ksse inspect: flag provided but not defined: -x\nRun 'ksse inspect --help' for usage.\n"},
		{[]string{"demo", "--records=x"}, "ksse demo: invalid value \"x\" for flag -records: parse error\nRun 'ksse demo --help' for usage.\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			require.Equal(t, exitUsage, r.code)
			require.Equal(t, tc.want, r.stderr)
			require.Empty(t, r.stdout)
		})
	}
}

// TestHelp checks that help asked for goes to standard output with exit
// status 0, so that 'ksse put --help | less' works.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-help"}, {"-h"}, {"help"}} {
		r := runCLI(t, nil, args...)
		require.Equal(t, exitOK, r.code, args)
		for _, cmd := range commands {
			require.Contains(t, r.stdout, "  "+cmd.name+" ", args)
		}
		require.Contains(t, r.stdout, "2 usage error", args)
		require.Empty(t, r.stderr, args)
	}

	for _, cmd := range commands {
		for _, args := range [][]string{{cmd.name, "--help"}, {cmd.name, "-h"}, {"help", cmd.name}, {cmd.name, "file", "--help"}} {
			r := runCLI(t, nil, args...)
			require.Equal(t, exitOK, r.code, args)
			require.True(t, strings.HasPrefix(r.stdout, "Usage: ksse "+cmd.name+" "), args)
			require.Contains(t, r.stdout, "Exit status: 0 success, 1 runtime failure, 2 usage error.", args)
			require.Empty(t, r.stderr, args)
		}
	}
	// The flags are listed, with their descriptions.
	r := runCLI(t, nil, "put", "--help")
	require.Contains(t, r.stdout, "\nFlags:\n  -key-id ")

	// Help for no command, or an unknown one, is a usage error.
	r = runCLI(t, nil)
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "Usage: ksse COMMAND")
	require.Empty(t, r.stdout)
	r = runCLI(t, nil, "help", "frobnicate")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, `unknown command "frobnicate"`)
	require.Empty(t, r.stdout)
}

func TestParseArgsInterspersed(t *testing.T) {
	c := &cli{name: "ksse test", stderr: io.Discard}
	fs := newFlagSet(c, "", "")
	s := fs.String("stream", "", "")
	b := fs.Bool("firehose", false, "")
	pos, err := parseArgs(fs, []string{"a", "--stream", "x", "b", "--firehose", "--", "--stream", "-"})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "--stream", "-"}, pos)
	require.Equal(t, "x", *s)
	require.True(t, *b)
}

func TestRuntimeErrorExitsOne(t *testing.T) {
	// Nothing listens on port 1: the AWS call fails, which is a runtime
	// failure, not a usage error. No retries, to keep it fast.
	awsEnv(t, "http://127.0.0.1:1")
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	const keyARN = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"
	r := runCLI(t, nil, "tail", "--stream", "s", "--key-arn", keyARN)
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "ksse tail: ListShards:")
	require.Empty(t, r.stdout)

	// A key ID or alias is resolved with KMS before reading.
	r = runCLI(t, nil, "tail", "--stream", "s", "--key-arn", "alias/k")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, `ksse tail: --key-arn "alias/k": resolving it to a key ARN with KMS DescribeKey: `)

	// put checks the stream before it asks KMS for a data key.
	r = runCLI(t, strings.NewReader("x\n"), "put", "--stream", "s", "--key-id", "alias/k")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "ksse put: DescribeStreamSummary: ")

	r = runCLI(t, nil, "inspect", filepath.Join(t.TempDir(), "missing"))
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "ksse inspect: open ")

	r = runCLI(t, nil, "decrypt", "--stream", "s", "--any-key", filepath.Join(t.TempDir(), "missing"))
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "ksse decrypt: open ")
	require.Empty(t, r.stdout)

	r = runCLI(t, nil, "inspect")
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "empty input")

	// A region is required.
	t.Setenv("AWS_REGION", "")
	r = runCLI(t, nil, "tail", "--stream", "s", "--key-arn", keyARN)
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "no AWS region")
}
