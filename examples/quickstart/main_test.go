package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/record"
)

// TestReadme checks that the quickstart of README.md is this program, byte
// for byte, so that it compiles as pasted.
func TestReadme(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	_, section, ok := bytes.Cut(readme, []byte("\n## Quickstart\n"))
	require.True(t, ok, "README.md has no Quickstart section")
	_, block, ok := bytes.Cut(section, []byte("\n```go\n"))
	require.True(t, ok, "the Quickstart section has no Go code block")
	block, _, ok = bytes.Cut(block, []byte("\n```\n"))
	require.True(t, ok, "the Go code block does not end")
	require.Equal(t, string(src), string(block)+"\n", "README.md's quickstart differs from examples/quickstart/main.go")
}

// TestQuickstart runs the program against moto, with a stream and a KMS key
// created for it, as the README says.
func TestQuickstart(t *testing.T) {
	srv := emulatortest.New(t, emulator.Moto)
	ctx := t.Context()
	cfg := srv.AWSConfig()
	kinesisClient, kmsClient := kinesis.NewFromConfig(cfg), kms.NewFromConfig(cfg)
	stream := emulator.UniqueName("ksse-quickstart")
	_, err := kinesisClient.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(stream), ShardCount: aws.Int32(1)})
	require.NoError(t, err)
	require.NoError(t, kinesis.NewStreamExistsWaiter(kinesisClient).Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(stream)}, time.Minute))
	newKey := func() string {
		out, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
		return aws.ToString(out.KeyMetadata.Arn)
	}
	keyARN := newKey()

	out := runMain(t, srv, "-stream", stream, "-key-arn", keyARN)
	require.Equal(t, "customer-42: {\"order\":1001,\"cents\":1250}\n", out)
	out = runMain(t, srv, "-stream", stream, "-key-arn", keyARN)
	require.Equal(t, strings.Repeat("customer-42: {\"order\":1001,\"cents\":1250}\n", 2), out)

	// On the wire: no plaintext.
	it, err := kinesisClient.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	require.NoError(t, err)
	raw, err := kinesisClient.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	require.NoError(t, err)
	require.Len(t, raw.Records, 2)
	for _, r := range raw.Records {
		require.Equal(t, record.OutboundPartitionKey, aws.ToString(r.PartitionKey))
		require.NotContains(t, string(r.Data), "order")
	}

	// Strict mode: with another key, the records of the first one are
	// refused, for good (record.IsPermanent).
	setEnv(t, srv)
	err = run(ctx, stream, newKey())
	be, ok := errors.AsType[*record.BatchError](err)
	require.True(t, ok, "%v", err)
	require.Len(t, be.Failed, 2)
	for _, f := range be.Failed {
		require.True(t, record.IsPermanent(f.Err), "%v", f.Err)
	}
}

// setEnv points the SDK's standard configuration at srv.
func setEnv(t *testing.T, srv *emulator.Server) {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AWS_REGION": emulator.Region,
		"AWS_ACCESS_KEY_ID": emulator.AccessKeyID, "AWS_SECRET_ACCESS_KEY": emulator.SecretAccessKey,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
}

// runMain runs main with args and the SDK's standard configuration pointed
// at srv, and returns its standard output.
func runMain(t *testing.T, srv *emulator.Server, args ...string) string {
	setEnv(t, srv)
	oldArgs, oldStdout, oldFlags := os.Args, os.Stdout, flag.CommandLine
	defer func() { os.Args, os.Stdout, flag.CommandLine = oldArgs, oldStdout, oldFlags }()
	os.Args = append([]string{"quickstart"}, args...)
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ExitOnError) // main defines its flags
	r, w, err := os.Pipe()
	require.NoError(t, err)
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	main()
	w.Close()
	out := <-done
	t.Logf("output:\n%s", out)
	return out
}
