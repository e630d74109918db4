package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// kmsFixture is the test KMS, served over HTTP and configured for the CLI
// with AWS_ENDPOINT_URL_KMS, and an Encryptor that seals envelopes with it
// in process.
type kmsFixture struct {
	kms    *kmsfake.KMS
	keyID  string
	keyARN string
	enc    *record.Encryptor
}

func newKMSFixture(t *testing.T) *kmsFixture {
	t.Helper()
	k := kmsfake.New()
	keyID, keyARN := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	srv := kmsfake.NewServer(k)
	t.Cleanup(srv.Close)
	awsEnv(t, "")
	t.Setenv("AWS_ENDPOINT_URL_KMS", srv.URL())
	enc, err := record.NewEncryptor(k, keyARN)
	require.NoError(t, err)
	t.Cleanup(func() { enc.Close() })
	return &kmsFixture{kms: k, keyID: keyID, keyARN: keyARN, enc: enc}
}

func (f *kmsFixture) seal(t *testing.T, stream, partitionKey, payload string) []byte {
	t.Helper()
	e, err := f.enc.Encrypt(t.Context(), stream, partitionKey, []byte(payload))
	require.NoError(t, err)
	return e.Data
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "object")
	require.NoError(t, os.WriteFile(name, b, 0o600))
	return name
}

func TestDecryptConcatenation(t *testing.T) {
	f := newKMSFixture(t)
	st := "orders"
	var obj []byte
	obj = append(obj, f.seal(t, st, "a", "one")...)
	obj = append(obj, f.seal(t, st, "b", "\x00\xff binary")...)
	obj = append(obj, f.seal(t, st, "c", "")...)
	file := writeFile(t, obj)

	check := func(r result) {
		t.Helper()
		require.Equal(t, exitOK, r.code)
		require.Empty(t, r.stderr)
		got := jsonLines(t, r.stdout)
		require.Len(t, got, 3)
		for i, want := range []jsonRecord{
			{PartitionKey: "a", Data: "one", EncryptionType: "KMS"},
			{PartitionKey: "b", Data: base64.StdEncoding.EncodeToString([]byte("\x00\xff binary")), DataEncoding: "base64", EncryptionType: "KMS"},
			{PartitionKey: "c", Data: "", EncryptionType: "KMS"},
		} {
			want.Index = &i
			require.Equal(t, want, got[i])
		}
	}
	check(runCLI(t, nil, "decrypt", "--stream", "orders", "--key-arn", f.keyARN, file))
	check(runCLI(t, nil, "decrypt", file, "--key-arn", f.keyARN, "--stream", "arn:aws:kinesis:us-east-1:111122223333:stream/orders"))
	check(runCLI(t, bytes.NewReader(obj), "decrypt", "--stream", "orders", "--key-arn", f.keyARN))
	check(runCLI(t, bytes.NewReader(obj), "decrypt", "--stream", "orders", "--key-arn", f.keyARN, "-"))
	// One data key, one Decrypt per run (a run has its own cache).
	require.EqualValues(t, 4, f.kms.Calls("Decrypt"))

	// The stream is authenticated: another stream, or a Firehose delivery
	// stream of the same name, decrypts nothing. Each record is reported,
	// and the summary names both causes.
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"--stream", "invoices"}, " (none authenticates for stream invoices: either they were written to another stream, whose name is authenticated, or they were tampered with or are not ksse records)\n"},
		{[]string{"--stream", "orders", "--firehose"}, " (none authenticates for delivery stream orders: either they were written to another stream, whose name is authenticated, or they were tampered with or are not ksse records)\n"},
	} {
		r := runCLI(t, nil, append([]string{"decrypt", file, "--key-arn", f.keyARN}, tc.args...)...)
		require.Equal(t, exitFailure, r.code)
		require.Empty(t, r.stdout)
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		require.Len(t, lines, 4)
		for i, line := range lines[:3] {
			require.Equal(t, fmt.Sprintf("ksse decrypt: record %d (byte %d, %d bytes) failed to decrypt: %v", i, envelopeOffset(t, obj, i), envelopeSize(t, obj, i), envelope.ErrOpen), line)
		}
		require.Contains(t, r.stderr, "ksse decrypt: 3 of 3 records failed to decrypt"+tc.hint)
	}
}

// envelopeOffset returns the byte offset of envelope i of the concatenation
// obj, and envelopeSize its size.
func envelopeOffset(t *testing.T, obj []byte, i int) int {
	t.Helper()
	off := 0
	for range i {
		off += envelopeSize(t, obj[off:], 0)
	}
	return off
}

func envelopeSize(t *testing.T, obj []byte, i int) int {
	t.Helper()
	off := envelopeOffset(t, obj, i)
	e, _, err := envelope.Parse(obj[off:])
	require.NoError(t, err)
	return e.Size()
}

func TestDecryptFirehoseObject(t *testing.T) {
	f := newKMSFixture(t)
	var obj []byte
	for i := range 5 {
		var err error
		obj, err = f.enc.EncryptFirehose(t.Context(), obj, "deliveries", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		require.NoError(t, err)
	}
	r := runCLI(t, bytes.NewReader(obj), "decrypt", "--firehose", "--stream", "deliveries", "--key-arn", f.keyARN)
	require.Equal(t, exitOK, r.code)
	got := jsonLines(t, r.stdout)
	require.Len(t, got, 5)
	for i, g := range got {
		require.Equal(t, i, *g.Index)
		require.Empty(t, g.PartitionKey)
		require.Equal(t, fmt.Sprintf(`{"n":%d}`, i), g.Data)
	}
	require.NotContains(t, r.stdout, "partitionKey")

	r = runCLI(t, bytes.NewReader(obj), "decrypt", "--stream", "deliveries", "--key-arn", f.keyARN)
	require.Equal(t, exitFailure, r.code)
	require.Empty(t, r.stdout)
}

func TestDecryptTampered(t *testing.T) {
	f := newKMSFixture(t)
	st := "orders"
	first := f.seal(t, st, "pk-first", "first")
	middle := f.seal(t, st, "pk-middle", "secret-middle-payload")
	last := f.seal(t, st, "pk-last", "last")
	e, _, err := envelope.Parse(middle)
	require.NoError(t, err)

	// One flipped bit in each region of the middle envelope that keeps it
	// splittable: salt, sealed partition key, nonce, ciphertext, tag,
	// wrapped key.
	bodyStart := envelope.HeaderSize
	for name, pos := range map[string]int{
		"salt":           10,
		"sealed pk":      bodyStart,
		"nonce":          bodyStart + 2 + len("pk-middle"),
		"ciphertext":     bodyStart + 2 + len("pk-middle") + envelope.NonceSize,
		"tag":            bodyStart + len(e.Body) - 1,
		"wrapped key":    bodyStart + len(e.Body) + len(e.WrappedKey)/2,
		"wrapped key id": bodyStart + len(e.Body) + 1,
	} {
		t.Run(name, func(t *testing.T) {
			bad := bytes.Clone(middle)
			bad[pos] ^= 0x04
			obj := append(append(bytes.Clone(first), bad...), last...)
			r := runCLI(t, bytes.NewReader(obj), "decrypt", "--stream", "orders", "--key-arn", f.keyARN)
			require.Equal(t, exitFailure, r.code)
			got := jsonLines(t, r.stdout)
			require.Len(t, got, 2)
			require.Equal(t, "first", got[0].Data)
			require.Equal(t, 0, *got[0].Index)
			require.Equal(t, "last", got[1].Data)
			require.Equal(t, 2, *got[1].Index)
			require.Contains(t, r.stderr, fmt.Sprintf("ksse decrypt: record 1 (byte %d, %d bytes) failed to decrypt: ", len(first), len(middle)))
			require.Contains(t, r.stderr, "ksse decrypt: 1 of 3 records failed to decrypt\n")
			require.NotContains(t, r.stderr, "none authenticates", "no hint about the stream when other records authenticate")
			require.NotContains(t, r.stdout+r.stderr, "secret-middle")
			require.NotContains(t, r.stdout+r.stderr, "pk-middle")
		})
	}
}

// TestDecryptKeyARN checks that a record refused because of --key-arn says
// so, whichever way the refusal comes: from the decryptor's allowlist or from
// KMS given the one --key-arn key as the KeyId of Decrypt.
func TestDecryptKeyARN(t *testing.T) {
	f := newKMSFixture(t)
	st := "orders"
	obj := append(f.seal(t, st, "a", "secret-one"), f.seal(t, st, "b", "secret-two")...)
	file := writeFile(t, obj)
	_, otherARN := f.kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	missingARN := "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"

	for _, tc := range []struct {
		name    string
		keyARNs []string
		want    string // in the message of each record
	}{
		// kmstest answers IncorrectKeyException, as AWS KMS does; the
		// decryptor turns it into keycache.ErrNotAllowed.
		{"one other key", []string{otherARN}, "failed to decrypt: its data key is not of a --key-arn key: Decrypt: " + keycache.ErrNotAllowed.Error()},
		// Each key is asked in turn: the other one refuses the record, the
		// missing one is not found, which may be the record's key.
		{"two other keys", []string{otherARN, missingARN}, "failed to decrypt: KMS does not find a --key-arn key: Decrypt: kmsiface: key not found"},
		// KMS does not find the key it was asked for.
		{"one missing key", []string{missingARN}, "failed to decrypt: KMS does not find a --key-arn key: Decrypt: kmsiface: key not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"decrypt", "--stream", "orders", file}
			for _, k := range tc.keyARNs {
				args = append(args, "--key-arn", k)
			}
			r := runCLI(t, nil, args...)
			require.Equal(t, exitFailure, r.code)
			require.Empty(t, r.stdout)
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			require.Len(t, lines, 3)
			for i, line := range lines[:2] {
				require.Contains(t, line, fmt.Sprintf("ksse decrypt: record %d (byte ", i))
				require.Contains(t, line, tc.want)
			}
			// Not a stream problem: no hint about the stream.
			require.Equal(t, "ksse decrypt: 2 of 2 records failed to decrypt", lines[2])
			require.NotContains(t, r.stderr, "secret-")
		})
	}

	// The right key, alone or among others, decrypts.
	for _, keys := range [][]string{{f.keyARN}, {otherARN, f.keyARN}} {
		args := []string{"decrypt", "--stream", "orders", file}
		for _, k := range keys {
			args = append(args, "--key-arn", k)
		}
		r := runCLI(t, nil, args...)
		require.Equal(t, exitOK, r.code)
		require.Len(t, jsonLines(t, r.stdout), 2)
	}
}

// TestDecryptKeyFlags checks the choice between --key-arn and --any-key,
// and that a key ID or alias given to --key-arn is resolved to the key ARN
// with DescribeKey before any record is read.
func TestDecryptKeyFlags(t *testing.T) {
	f := newKMSFixture(t)
	st := "orders"
	obj := append(f.seal(t, st, "a", "secret-one"), f.seal(t, st, "b", "secret-two")...)
	file := writeFile(t, obj)
	require.NoError(t, f.kms.CreateAlias("alias/orders", f.keyID))
	otherID, _ := f.kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	require.NoError(t, f.kms.CreateAlias("alias/other", otherID))

	// Neither, or both: a usage error that says what to do; no AWS call.
	calls := f.kms.Calls("")
	r := runCLI(t, nil, "decrypt", "--stream", "orders", file)
	require.Equal(t, exitUsage, r.code)
	require.Equal(t, "ksse decrypt: name the KMS keys to trust with --key-arn ARN (repeatable; a key ID or alias is resolved), or pass --any-key to trust any key your credentials can decrypt with\nRun 'ksse decrypt --help' for usage.\n", r.stderr)
	require.Empty(t, r.stdout)
	r = runCLI(t, nil, "decrypt", "--stream", "orders", "--any-key", "--key-arn", f.keyARN, file)
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--any-key and --key-arn exclude each other")
	require.Equal(t, calls, f.kms.Calls(""))

	// --any-key decrypts, with a warning.
	r = runCLI(t, nil, "decrypt", "--stream", "orders", "--any-key", file)
	require.Equal(t, exitOK, r.code)
	require.Len(t, jsonLines(t, r.stdout), 2)
	require.Equal(t, "ksse decrypt: warning: --any-key: records of any KMS key your credentials can decrypt with are accepted; they are only as authentic as those credentials are narrow\n", r.stderr)

	// The key ID, alias name and alias ARN are resolved to the key ARN:
	// one DescribeKey each, and the key ARN is then sent as the KeyId of
	// Decrypt (one --key-arn), so the records decrypt.
	for _, id := range []string{f.keyID, "alias/orders", "arn:aws:kms:us-east-1:111122223333:alias/orders"} {
		describe := f.kms.Calls("DescribeKey")
		r := runCLI(t, nil, "decrypt", "--stream", "orders", "--key-arn", id, file)
		require.Equal(t, exitOK, r.code, id)
		require.Empty(t, r.stderr)
		require.Len(t, jsonLines(t, r.stdout), 2)
		require.Equal(t, describe+1, f.kms.Calls("DescribeKey"))
	}
	// An alias of another key resolves to that key: the records are
	// refused, as of a key not trusted.
	r = runCLI(t, nil, "decrypt", "--stream", "orders", "--key-arn", "alias/other", file)
	require.Equal(t, exitFailure, r.code)
	require.Empty(t, r.stdout)
	require.Contains(t, r.stderr, "ksse decrypt: record 0 (byte 0, ")
	require.Contains(t, r.stderr, "its data key is not of a --key-arn key")
	require.NotContains(t, r.stderr, "secret-")

	// A key or alias that KMS does not know is an error before any record
	// is read.
	for _, id := range []string{"alias/missing", "arn:aws:kms:us-east-1:111122223333:alias/missing", "00000000-0000-4000-8000-000000000000"} {
		decrypts := f.kms.Calls("Decrypt")
		r := runCLI(t, nil, "decrypt", "--stream", "orders", "--key-arn", f.keyARN, "--key-arn", id, file)
		require.Equal(t, exitFailure, r.code, id)
		require.Empty(t, r.stdout)
		require.Equal(t, fmt.Sprintf("ksse decrypt: --key-arn %q: KMS has no such key or alias\n", id), r.stderr)
		require.Equal(t, decrypts, f.kms.Calls("Decrypt"))
	}
}

// TestExplainKeyError checks the messages that say what --key-arn has to
// do with a failure (each --key-arn key is named as the KeyId of Decrypt,
// so KMS refusing or not finding it is about that key), and that other
// errors pass unchanged.
func TestExplainKeyError(t *testing.T) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"
	denied := kmsiface.Classify("Decrypt", &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "User: x is not authorized"})
	notFound := kmsiface.Classify("Decrypt", &kmstypes.NotFoundException{Message: aws.String("Key '" + arn + "' does not exist")})
	notAllowed := fmt.Errorf("Decrypt: %w: %q", keycache.ErrNotAllowed, arn)

	for _, keys := range [][]string{{arn}, {arn, arn}} {
		require.EqualError(t, explainKeyError(denied, keys),
			"KMS refused to use a --key-arn key (may these credentials decrypt with it?): "+denied.Error())
		require.EqualError(t, explainKeyError(notFound, keys), "KMS does not find a --key-arn key: "+notFound.Error())
		require.EqualError(t, explainKeyError(notAllowed, keys), "its data key is not of a --key-arn key: "+notAllowed.Error())
	}
	require.ErrorIs(t, explainKeyError(notAllowed, []string{arn}), keycache.ErrNotAllowed)

	// Without --key-arn, or for other errors, nothing is added.
	require.Equal(t, notFound, explainKeyError(notFound, nil))
	require.Equal(t, envelope.ErrOpen, explainKeyError(envelope.ErrOpen, []string{arn}))
}

func TestDecryptMalformed(t *testing.T) {
	f := newKMSFixture(t)
	st := "orders"
	a := f.seal(t, st, "a", "first")
	b := f.seal(t, st, "b", "second")

	for _, tc := range []struct {
		name   string
		input  []byte
		good   int
		stderr string
	}{
		{"trailing bytes", append(append(bytes.Clone(a), b...), "xyz"...), 2, fmt.Sprintf("ksse decrypt: record 2: envelope: not a sequence of envelopes: no envelope header at byte %d", len(a)+len(b))},
		{"trailing partial header", append(append(bytes.Clone(a), b...), b[:envelope.HeaderSize-1]...), 2, fmt.Sprintf("ksse decrypt: record 2: envelope: not a sequence of envelopes: %d bytes at byte %d, shorter than an envelope header", envelope.HeaderSize-1, len(a)+len(b))},
		{"truncated", append(bytes.Clone(a), b[:len(b)-1]...), 1, fmt.Sprintf("ksse decrypt: record 1: envelope: not a sequence of envelopes: truncated envelope at byte %d (%d of %d bytes)", len(a), len(b)-1, len(b))},
		{"plaintext", []byte("hello\n"), 0, "ksse decrypt: record 0: envelope: not a sequence of envelopes: no envelope header at byte 0"},
		{"plaintext after", append(bytes.Clone(a), "hello, this is not an envelope\n"...), 1, fmt.Sprintf("no envelope header at byte %d", len(a))},
		{"newline delimiter", append(append(bytes.Clone(a), '\n'), b...), 1, fmt.Sprintf("no envelope header at byte %d", len(a))},
		{"oversized body length", append(bytes.Clone(a), withBodyLength(b, 0xffffffff)...), 1, fmt.Sprintf("envelope header with invalid lengths at byte %d", len(a))},
		{"body length off by one", append(bytes.Clone(a), withBodyLength(b, len(b)-envelope.HeaderSize-wrappedKeyLen(b)+1)...), 1, "truncated envelope"},
		{"version 2", append(bytes.Clone(a), withVersion(b, 2)...), 1, fmt.Sprintf("envelope version 2 at byte %d, not 1", len(a))},
		{"empty", nil, 0, "ksse decrypt: empty input: no envelope\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, bytes.NewReader(tc.input), "decrypt", "--stream", "orders", "--key-arn", f.keyARN)
			got := jsonLines(t, r.stdout)
			require.Len(t, got, tc.good)
			require.Equal(t, exitFailure, r.code)
			require.Contains(t, r.stderr, tc.stderr)
			if tc.good == 0 {
				require.NotContains(t, r.stderr, "hello")
			}
		})
	}
}

func withBodyLength(env []byte, n int) []byte {
	env = bytes.Clone(env)
	env[6], env[7], env[8], env[9] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return env
}

func withVersion(env []byte, v byte) []byte {
	env = bytes.Clone(env)
	env[3] = v
	return env
}

func wrappedKeyLen(env []byte) int { return int(env[4])<<8 | int(env[5]) }

func TestInspect(t *testing.T) {
	f := newKMSFixture(t)
	st := "orders"
	a := f.seal(t, st, "customer-1", "hello")
	b := f.seal(t, st, "k", strings.Repeat("x", 1000))
	calls := f.kms.Calls("")

	r := runCLI(t, bytes.NewReader(append(bytes.Clone(a), b...)), "inspect")
	require.Equal(t, exitOK, r.code)
	require.Empty(t, r.stderr)
	var got []inspectRecord
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	for dec.More() {
		var ir inspectRecord
		require.NoError(t, dec.Decode(&ir))
		got = append(got, ir)
	}
	require.Len(t, got, 2)
	for i, env := range [][]byte{a, b} {
		e, _, err := envelope.Parse(env)
		require.NoError(t, err)
		require.Equal(t, inspectRecord{
			Index:            i,
			Offset:           int64(i * len(a)),
			Version:          1,
			Size:             len(env),
			BodyLength:       len(e.Body),
			WrappedKeyLength: len(e.WrappedKey),
			Salt:             hex.EncodeToString(e.Salt),
			KMSKeyID:         f.keyID,
			WrappedKeyFormat: "kmstest",
		}, got[i])
	}
	require.Equal(t, 2+len("customer-1")+envelope.NonceSize+len("hello")+envelope.TagSize, got[0].BodyLength)
	require.Equal(t, envelope.HeaderSize+got[0].BodyLength+got[0].WrappedKeyLength, got[0].Size)
	require.Equal(t, calls, f.kms.Calls(""), "inspect calls no KMS")

	// A file argument, and a malformed tail: the complete envelopes are
	// printed, then the error.
	r = runCLI(t, nil, "inspect", writeFile(t, append(bytes.Clone(a), 0xE5, 'K')))
	require.Equal(t, exitFailure, r.code)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 1)
	require.Contains(t, r.stderr, "ksse inspect: record 1: envelope: not a sequence of envelopes: 2 bytes at byte ")
}

// TestInspectHelpSample checks the arithmetic of the sample line in the help
// of inspect: size is the header, the body and the wrapped key.
func TestInspectHelpSample(t *testing.T) {
	m := regexp.MustCompile(`"size":(\d+),"bodyLength":(\d+),"wrappedKeyLength":(\d+)`).FindStringSubmatch(inspectDescription)
	require.NotNil(t, m, "no sample in the help of inspect")
	size, _ := strconv.Atoi(m[1])
	body, _ := strconv.Atoi(m[2])
	wrapped, _ := strconv.Atoi(m[3])
	require.Equal(t, envelope.HeaderSize+body+wrapped, size)
}

func TestWrappedKeyID(t *testing.T) {
	const id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	const arn = "arn:aws:kms:eu-west-1:123456789012:key/" + id
	random := bytes.Repeat([]byte{0x9c, 0x01, 0xfe, 0x37}, 46) // 184 bytes, like an AWS KMS blob
	for _, tc := range []struct {
		name       string
		blob       []byte
		id, format string
	}{
		{"kmstest", append(append([]byte{1}, id...), random[:40]...), id, "kmstest"},
		{"moto", append([]byte(id), random[:60]...), id, "moto"},
		{"local-kms", append(append([]byte{byte(len(arn))}, arn...), random[:40]...), arn, "local-kms"},
		{"arn in clear", append(append(bytes.Clone(random[:20]), arn...), random[:40]...), arn, "text"},
		{"uuid in clear", append(append(bytes.Clone(random[:7]), id...), random[:40]...), id, "text"},
		{"opaque", random, "unknown", "unknown"},
		{"upper-case uuid", append([]byte(strings.ToUpper(id)), random[:60]...), "unknown", "unknown"},
		{"short", []byte{1, '0'}, "unknown", "unknown"},
		{"length byte past the end", append([]byte{200}, "arn:aws:kms"...), "unknown", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotID, gotFormat := wrappedKeyID(tc.blob)
			require.Equal(t, tc.id, gotID)
			require.Equal(t, tc.format, gotFormat)
		})
	}
}
