package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

// checkDemo checks the output of a successful demo of n records.
func checkDemo(t *testing.T, r result, n string) {
	t.Helper()
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Regexp(t, `^demo: OK: `+n+` records encrypted, sent to a stream of 2 shards, read back, decrypted and verified with \d+ KMS calls$`, lines[len(lines)-1])
	for _, want := range []string{
		"demo: sent " + n + " records with Encryptor.PutRecords",
		"demo: decrypted " + n + " records with DecryptRecords: every payload and partition key equals what was sent",
		"demo: shard placement equals plaintext placement: " + n + "/" + n + " records",
		"no plaintext payload or partition key in any record",
		"demo: tampering: a record with one flipped bit is rejected",
		"demo: the consumer trusts data keys of arn:aws:kms:",
		"demo: deleted stream ksse-demo-",
	} {
		require.Contains(t, r.stdout, want)
	}
	// The overhead line adds up: 56 + wrapped key + partition key.
	m := regexp.MustCompile(`overhead: ([\d.]+) bytes per record = 56 \(envelope\) \+ (\d+) \(KMS-wrapped data key\) \+ ([\d.]+)`).FindStringSubmatch(r.stdout)
	require.NotNil(t, m)
	total, wrapped, pk := parseFloat(t, m[1]), parseFloat(t, m[2]), parseFloat(t, m[3])
	require.InDelta(t, 56+wrapped+pk, total, 0.051)
}

func parseFloat(t *testing.T, s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	require.NoError(t, err)
	return f
}

func TestDemoEmbedded(t *testing.T) {
	// The embedded default: no endpoint and no key configured. Use the
	// shared moto through KSSE_MOTO_ENDPOINT (as the test script does) so
	// that the demo does not start its own.
	srv := emulatortest.Shared(t, emulator.Moto)
	awsEnv(t, "")
	t.Setenv(emulator.MotoEndpointEnv, srv.URL())
	r := runCLI(t, nil, "demo")
	checkDemo(t, r, "20")
	require.Contains(t, r.stdout, "demo: embedded default: Kinesis on moto at "+srv.URL())
	require.Contains(t, r.stdout, "(kmstest)")
	require.Contains(t, r.stdout, "demo: KMS calls: 1 GenerateDataKey (producer; the data key is cached for 5 minutes), 1 Decrypt (consumer; one per data key) for 20 records")
	require.Contains(t, r.stdout, "demo: the test KMS server counted the same calls")
	require.Contains(t, r.stdout, "+ 97 (KMS-wrapped data key)") // kmstest's blob for 32 bytes
	require.Empty(t, r.stderr)

	// --embedded wins over a configured endpoint.
	awsEnv(t, "http://127.0.0.1:1")
	r = runCLI(t, nil, "demo", "--embedded", "--records", "3")
	checkDemo(t, r, "3")
}

func TestDemoConfiguredEndpoint(t *testing.T) {
	// With AWS_ENDPOINT_URL set, the demo uses it for both services, and
	// creates (and schedules the deletion of) a KMS key there.
	srv := emulatortest.Shared(t, emulator.Moto)
	awsEnv(t, srv.URL())
	r := runCLI(t, nil, "demo", "--records", "8")
	checkDemo(t, r, "8")
	require.Contains(t, r.stdout, "demo: using the configured endpoints (Kinesis "+srv.URL()+", KMS "+srv.URL())
	require.NotContains(t, r.stdout, "kmstest")
	require.Empty(t, r.stderr)

	// A key named by its alias: the consumer trusts its key ARN.
	cfg := srv.AWSConfig()
	key, err := kms.NewFromConfig(cfg).CreateKey(t.Context(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	alias := "alias/" + emulator.UniqueName("ksse-demo")
	_, err = kms.NewFromConfig(cfg).CreateAlias(t.Context(), &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: key.KeyMetadata.KeyId})
	require.NoError(t, err)
	r = runCLI(t, nil, "demo", "--records", "2", "--key-id", alias)
	checkDemo(t, r, "2")
	require.Contains(t, r.stdout, "demo: KMS key "+alias+"\n")
	require.Contains(t, r.stdout, "demo: the consumer trusts data keys of "+aws.ToString(key.KeyMetadata.Arn)+" only")

	// Kinesis on an emulator but KMS on AWS: a key must be named, the
	// demo does not create one in a real account.
	awsEnv(t, "")
	t.Setenv("AWS_ENDPOINT_URL_KINESIS", srv.URL())
	r = runCLI(t, nil, "demo")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--key-id is required with AWS KMS")
}
