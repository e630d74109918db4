package record_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// badInputs is the table of bad caller input and the exact error each gets:
// the sentinel it matches with errors.Is (nil: no sentinel, the message is
// the contract) and a substring of its message. TestBadInput runs it and
// logs it. Rows marked "valid" are edge cases that must succeed.
//
//	input                                          error (errors.Is)            message contains
//	---------------------------------------------  ---------------------------  ------------------------------------
//	NewEncryptor(nil client)                       record.ErrInvalidInput       nil KMS client
//	NewEncryptor(empty key ID)                     record.ErrInvalidInput       empty KMS key ID
//	NewDecryptor(nil client)                       record.ErrInvalidInput       nil KMS client
//	MaxRecordSize -1 / 10 MiB+1                    (none)                       MaxRecordSize … is not between 1 and
//	stream "", "bad name", "ström", 129 chars      record.ErrInvalidInput       want 1 to 128 of a-z, A-Z, 0-9, _ . -
//	ARN of firehose / deliverystream resource      record.ErrInvalidInput       is not a kinesis ARN
//	ARN with too few parts                         record.ErrInvalidInput       is not a kinesis ARN
//	ARN with empty, too long or "/" name           record.ErrInvalidInput       want 1 to 128
//	partition key ""                               record.ErrInvalidInput       empty
//	partition key of 257 characters                record.ErrInvalidInput       257 characters, more than 256
//	partition key "\xff" (not UTF-8)               record.ErrInvalidInput       not valid UTF-8
//	partition key of 256 4-byte characters         valid
//	payload over the stream limit (1 MiB)          record.ErrRecordTooLarge     limit 1048576
//	payload over MaxRecordSize = 10 MiB            record.ErrRecordTooLarge     limit 10485760
//	payload of 10 MiB - 1 KiB, MaxRecordSize 10 MiB valid
//	zero-length payload (nil or empty)             valid
//	asymmetric KMS key (RSA_2048) for Encrypt      kmsiface.ErrInvalidKey       InvalidKeyUsageException
//	asymmetric KMS key for SetKeyID                kmsiface.ErrInvalidKey       want SYMMETRIC_DEFAULT
//	SetKeyID("")                                   record.ErrInvalidInput       empty KMS key ID
//	PutRecords(nil client) / (nil input)           record.ErrInvalidInput       nil client or input
//	PutRecords with 0 / 501 entries                record.ErrInvalidInput       records, want 1 to 500
//	PutRecords without stream name or ARN          record.ErrInvalidInput       want 1 to 128
//	PutRecords entry with nil partition key        record.ErrInvalidInput       (and the others record.ErrNotSent)
//	PutRecords over 5 MiB in total                 record.ErrRecordTooLarge     request of
//	PutRecord(nil client) / (nil input)            record.ErrInvalidInput       nil client or input
//	EncryptFirehose / DecryptFirehose, bad stream  record.ErrInvalidInput       want 1 to 128 / is not a firehose ARN
//	Decrypt of nil, "", JSON (strict consumer)     record.ErrNotEncrypted       record is not encrypted
//	Decrypt of magic + garbage                     envelope.ErrOpen             message authentication failed
//	Decrypt of a key outside the allowlist         keycache.ErrNotAllowed       not in the allowed list / is not of
//	DecryptRecords(nil)                            valid (nothing to do)
//	Encrypt / Decrypt after Close                  keycache.ErrClosed           closed
type badInput struct {
	name   string
	run    func(ctx context.Context) error
	want   error  // nil: no sentinel
	substr string // "" with want nil: the input is valid
}

// biEnv is the KMS, keys and caches of the bad input tests.
type biEnv struct {
	k             *kmsfake.KMS
	arn, arn2     string
	arn3          string // a key that seals nothing
	rsa           string
	enc, enc10MiB *record.Encryptor
	dec           *record.Decryptor
}

func newBIEnv(t *testing.T) *biEnv {
	t.Helper()
	e := &biEnv{k: kmsfake.New()}
	_, e.arn = e.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, e.arn2 = e.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, e.arn3 = e.k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, e.rsa = e.k.CreateKey(kmstypes.KeySpecRsa2048)
	var err error
	e.enc, err = record.NewEncryptor(e.k, e.arn)
	require.NoError(t, err)
	e.enc10MiB, err = record.NewEncryptor(e.k, e.arn, func(o *record.EncryptorOptions) { o.MaxRecordSize = record.MaxRecordSizeLimit })
	require.NoError(t, err)
	e.dec, err = record.NewDecryptor(e.k, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{e.arn, e.arn2}
		o.DecryptRate = -1 // the tamper loops unwrap thousands of forged wrapped keys
	})
	require.NoError(t, err)
	t.Cleanup(func() { e.enc.Close(); e.enc10MiB.Close(); e.dec.Close() })
	return e
}

// okFake is a Kinesis client that accepts every record and keeps what it
// was sent.
type okFake struct{ puts, put int }

func (f *okFake) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.puts++
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0)}
	for range in.Records {
		out.Records = append(out.Records, types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-000000000000")})
	}
	return out, nil
}

func (f *okFake) PutRecord(context.Context, *kinesis.PutRecordInput, ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	f.put++
	return &kinesis.PutRecordOutput{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-000000000000")}, nil
}

func entries(n int, pk *string, size int) []types.PutRecordsRequestEntry {
	es := make([]types.PutRecordsRequestEntry, n)
	for i := range es {
		es[i] = types.PutRecordsRequestEntry{PartitionKey: pk, Data: make([]byte, size)}
	}
	return es
}

func TestBadInput(t *testing.T) {
	env := newBIEnv(t)
	const arnPrefix = "arn:aws:kinesis:us-east-1:111122223333:"
	encrypt := func(enc *record.Encryptor, stream, pk string, data []byte) func(context.Context) error {
		return func(ctx context.Context) error {
			r, err := enc.Encrypt(ctx, stream, pk, data)
			if err != nil {
				return err
			}
			d, err := env.dec.Decrypt(ctx, stream, r.Data)
			if err == nil && (d.PartitionKey != pk || !bytes.Equal(d.Data, data)) {
				err = errors.New("round trip mismatch")
			}
			return err
		}
	}
	newEnc := func(fn func(*record.EncryptorOptions)) func(context.Context) error {
		return func(context.Context) error {
			e, err := record.NewEncryptor(env.k, env.arn, fn)
			if err == nil {
				e.Close()
			}
			return err
		}
	}
	fake := &okFake{}
	put := func(in *kinesis.PutRecordsInput) func(context.Context) error {
		return func(ctx context.Context) error { _, err := env.enc.PutRecords(ctx, fake, in); return err }
	}
	pk := aws.String("pk")
	allowlisted := func(allowed ...string) func(context.Context) error {
		return func(ctx context.Context) error {
			enc2, err := record.NewEncryptor(env.k, env.arn2)
			require.NoError(t, err)
			defer enc2.Close()
			r, err := enc2.Encrypt(ctx, "orders", "pk", []byte("x"))
			require.NoError(t, err)
			dec, err := record.NewDecryptor(env.k, func(o *record.DecryptorOptions) { o.AllowedKeys = allowed })
			require.NoError(t, err)
			defer dec.Close()
			_, err = dec.Decrypt(ctx, "orders", r.Data)
			return err
		}
	}
	closed := func(decrypt bool) func(context.Context) error {
		return func(ctx context.Context) error {
			enc, err := record.NewEncryptor(env.k, env.arn)
			require.NoError(t, err)
			r, err := enc.Encrypt(ctx, "s", "pk", nil)
			require.NoError(t, err)
			dec, err := record.NewDecryptor(env.k, anyKey)
			require.NoError(t, err)
			enc.Close()
			dec.Close()
			if decrypt {
				_, err = dec.Decrypt(ctx, "s", r.Data)
			} else {
				_, err = enc.Encrypt(ctx, "s", "pk", nil)
			}
			return err
		}
	}

	table := []badInput{
		{"NewEncryptor(nil client)", func(context.Context) error { _, err := record.NewEncryptor(nil, "k"); return err },
			record.ErrInvalidInput, "nil KMS client"},
		{"NewEncryptor(empty key ID)", func(context.Context) error { _, err := record.NewEncryptor(env.k, ""); return err },
			record.ErrInvalidInput, "empty KMS key ID"},
		{"NewDecryptor(nil client)", func(context.Context) error { _, err := record.NewDecryptor(nil, anyKey); return err },
			record.ErrInvalidInput, "nil KMS client"},
		{"MaxRecordSize -1", newEnc(func(o *record.EncryptorOptions) { o.MaxRecordSize = -1 }), nil, "MaxRecordSize -1 is not between 1 and 10485760"},
		{"MaxRecordSize 10 MiB + 1", newEnc(func(o *record.EncryptorOptions) { o.MaxRecordSize = 10<<20 + 1 }), nil, "is not between 1 and 10485760"},

		{`stream ""`, encrypt(env.enc, "", "pk", nil), record.ErrInvalidInput, "want 1 to 128 of a-z, A-Z, 0-9, _ . -"},
		{`stream "bad name"`, encrypt(env.enc, "bad name", "pk", nil), record.ErrInvalidInput, `"bad name"`},
		{`stream "ström"`, encrypt(env.enc, "ström", "pk", nil), record.ErrInvalidInput, "want 1 to 128"},
		{"stream of 129 characters", encrypt(env.enc, strings.Repeat("s", 129), "pk", nil), record.ErrInvalidInput, "want 1 to 128"},
		{"stream of 128 characters", encrypt(env.enc, strings.Repeat("s", 128), "pk", nil), nil, ""},
		{"ARN of another service", encrypt(env.enc, "arn:aws:firehose:us-east-1:111122223333:stream/x", "pk", nil),
			record.ErrInvalidInput, "is not a kinesis ARN"},
		{"ARN of another resource", encrypt(env.enc, arnPrefix+"deliverystream/x", "pk", nil), record.ErrInvalidInput, "is not a kinesis ARN"},
		{"ARN with too few parts", encrypt(env.enc, "arn:aws:kinesis:us-east-1", "pk", nil), record.ErrInvalidInput, "is not a kinesis ARN"},
		{"ARN with an empty name", encrypt(env.enc, arnPrefix+"stream/", "pk", nil), record.ErrInvalidInput, "want 1 to 128"},
		{"ARN with a 129-character name", encrypt(env.enc, arnPrefix+"stream/"+strings.Repeat("s", 129), "pk", nil), record.ErrInvalidInput, "want 1 to 128"},
		{`ARN with name "a/b"`, encrypt(env.enc, arnPrefix+"stream/a/b", "pk", nil), record.ErrInvalidInput, "want 1 to 128"},
		{"ARN in another partition", encrypt(env.enc, "arn:aws-cn:kinesis:cn-north-1:111122223333:stream/s", "pk", nil), nil, ""},

		{`partition key ""`, encrypt(env.enc, "s", "", nil), record.ErrInvalidInput, "empty"},
		{"partition key of 257 characters", encrypt(env.enc, "s", strings.Repeat("é", 257), nil), record.ErrInvalidInput,
			"257 characters, more than 256"},
		{`partition key "\xff"`, encrypt(env.enc, "s", "\xff", nil), record.ErrInvalidInput, "not valid UTF-8"},
		{"partition key of 256 4-byte characters", encrypt(env.enc, "s", strings.Repeat("🛒", 256), nil), nil, ""},

		{"payload of 1 MiB (stream limit 1 MiB)", encrypt(env.enc, "s", "pk", make([]byte, 1<<20)), record.ErrRecordTooLarge, "limit 1048576"},
		{"payload of 10 MiB (MaxRecordSize 10 MiB)", encrypt(env.enc10MiB, "s", "pk", make([]byte, 10<<20)), record.ErrRecordTooLarge, "limit 10485760"},
		{"payload of 10 MiB - 1 KiB (MaxRecordSize 10 MiB)", encrypt(env.enc10MiB, "s", "pk", make([]byte, 10<<20-1<<10)), nil, ""},
		{"nil payload", encrypt(env.enc, "s", "pk", nil), nil, ""},
		{"empty payload", encrypt(env.enc, "s", "pk", []byte{}), nil, ""},

		{"asymmetric key for Encrypt", func(ctx context.Context) error {
			enc, err := record.NewEncryptor(env.k, env.rsa)
			require.NoError(t, err)
			defer enc.Close()
			_, err = enc.Encrypt(ctx, "s", "pk", nil)
			return err
		}, kmsiface.ErrInvalidKey, "InvalidKeyUsageException"},
		{"asymmetric key for SetKeyID", func(ctx context.Context) error { return env.enc.SetKeyID(ctx, env.rsa) },
			kmsiface.ErrInvalidKey, "want SYMMETRIC_DEFAULT"},
		{`SetKeyID("")`, func(ctx context.Context) error { return env.enc.SetKeyID(ctx, "") }, record.ErrInvalidInput, "empty KMS key ID"},

		{"PutRecords(nil client)", func(ctx context.Context) error {
			_, err := env.enc.PutRecords(ctx, nil, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(1, pk, 1)})
			return err
		}, record.ErrInvalidInput, "nil client or input"},
		{"PutRecords(nil input)", put(nil), record.ErrInvalidInput, "nil client or input"},
		{"PutRecords with 0 entries", put(&kinesis.PutRecordsInput{StreamName: aws.String("s")}), record.ErrInvalidInput, "0 records, want 1 to 500"},
		{"PutRecords with 501 entries", put(&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(501, pk, 1)}),
			record.ErrInvalidInput, "501 records, want 1 to 500"},
		{"PutRecords with 500 entries", put(&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(500, pk, 1)}), nil, ""},
		{"PutRecords without stream", put(&kinesis.PutRecordsInput{Records: entries(1, pk, 1)}), record.ErrInvalidInput, "want 1 to 128"},
		{"PutRecords entry with nil partition key", put(&kinesis.PutRecordsInput{StreamName: aws.String("s"),
			Records: append(entries(1, pk, 1), entries(1, nil, 1)...)}), record.ErrInvalidInput, "record 1: record: invalid input: invalid partition key: empty"},
		{"PutRecords entry with nil data", put(&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(2, pk, 0)}), nil, ""},
		{"PutRecords of 6 × 1,000,000 bytes", put(&kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries(6, pk, 1_000_000)}),
			record.ErrRecordTooLarge, "request of"},
		{"PutRecord(nil client)", func(ctx context.Context) error {
			_, err := env.enc.PutRecord(ctx, nil, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: pk})
			return err
		}, record.ErrInvalidInput, "nil client or input"},
		{"PutRecord(nil input)", func(ctx context.Context) error { _, err := env.enc.PutRecord(ctx, fake, nil); return err },
			record.ErrInvalidInput, "nil client or input"},
		{"PutRecord with nil data", func(ctx context.Context) error {
			_, err := env.enc.PutRecord(ctx, fake, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: pk})
			return err
		}, nil, ""},

		{"EncryptFirehose without a delivery stream", func(ctx context.Context) error {
			_, err := env.enc.EncryptFirehose(ctx, nil, "", nil)
			return err
		}, record.ErrInvalidInput, "want 1 to 128"},
		{"DecryptFirehose with a Kinesis ARN", func(ctx context.Context) error {
			_, _, err := env.dec.DecryptFirehose(ctx, nil, "arn:aws:kinesis:us-east-1:1:stream/s", nil)
			return err
		}, record.ErrInvalidInput, "is not a firehose ARN"},

		{"Decrypt(nil)", func(ctx context.Context) error { _, err := env.dec.Decrypt(ctx, "s", nil); return err },
			record.ErrNotEncrypted, "record is not encrypted"},
		{`Decrypt("")`, func(ctx context.Context) error { _, err := env.dec.Decrypt(ctx, "s", []byte{}); return err },
			record.ErrNotEncrypted, "record is not encrypted"},
		{"Decrypt(JSON)", func(ctx context.Context) error { _, err := env.dec.Decrypt(ctx, "s", []byte(`{"a":1}`)); return err },
			record.ErrNotEncrypted, "record is not encrypted"},
		{"Decrypt(magic + garbage)", func(ctx context.Context) error {
			_, err := env.dec.Decrypt(ctx, "s", []byte("\xe5KS\x01 not an envelope at all, really"))
			return err
		}, envelope.ErrOpen, "message authentication failed"},
		{"Decrypt with an invalid stream", func(ctx context.Context) error { _, err := env.dec.Decrypt(ctx, "a b", nil); return err },
			record.ErrInvalidInput, "want 1 to 128"},
		{"Decrypt of a key outside a one-key allowlist", allowlisted(env.arn), keycache.ErrNotAllowed, "is not of"},
		{"Decrypt of a key outside a two-key allowlist", allowlisted(env.arn, env.arn3),
			keycache.ErrNotAllowed, "of none of the 2 allowed keys"},
		{"Decrypt of a key in the allowlist", allowlisted(env.arn2), nil, ""},
		{"DecryptRecords(nil)", func(ctx context.Context) error { return env.dec.DecryptRecords(ctx, "s", nil) }, nil, ""},
		{"Encrypt after Close", closed(false), keycache.ErrClosed, "closed"},
		{"Decrypt after Close", closed(true), keycache.ErrClosed, "closed"},
	}

	ctx := context.Background()
	var log strings.Builder
	for _, tc := range table {
		err := tc.run(ctx)
		switch {
		case tc.want == nil && tc.substr == "":
			require.NoError(t, err, tc.name)
			fmt.Fprintf(&log, "%-50s valid\n", tc.name)
			continue
		case tc.want != nil:
			require.ErrorIs(t, err, tc.want, tc.name)
		default:
			require.Error(t, err, tc.name)
		}
		require.Contains(t, err.Error(), tc.substr, tc.name)
		// Every message names where it comes from.
		require.Regexp(t, `^(record|envelope|keycache|PutRecords|GenerateDataKey|Decrypt|DescribeKey): `, err.Error(), tc.name)
		fmt.Fprintf(&log, "%-50s %v\n", tc.name, err)
	}
	require.Equal(t, 0, fake.puts-countValid(table, "PutRecords"), "only valid PutRecords calls reach Kinesis")
	t.Logf("%d bad inputs and edge cases:\n%s", len(table), log.String())
}

func countValid(table []badInput, prefix string) int {
	n := 0
	for _, tc := range table {
		if tc.want == nil && tc.substr == "" && strings.HasPrefix(tc.name, prefix+" ") {
			n++
		}
	}
	return n
}

// TestBadInputNeverPanics feeds random streams, partition keys and payloads
// to Encrypt, and random bytes and mutated envelopes to Decrypt and
// DecryptRecords: no call may panic, every error must be one of the
// documented ones, and whatever Encrypt accepts must decrypt to itself.
func TestBadInputNeverPanics(t *testing.T) {
	env := newBIEnv(t)
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(4, 2))
	n := 3000
	if testing.Short() {
		n = 500
	}
	pieces := []string{"", "s", "orders", "a b", "ström", "arn:", "arn:aws:kinesis:us-east-1:111122223333:stream/",
		"arn:aws:firehose:x:y:deliverystream/", ":", "/", "stream/", strings.Repeat("x", 120), "\xff", "\x00"}
	randString := func() string {
		var b strings.Builder
		for range rng.IntN(4) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if rng.IntN(3) == 0 {
			for range rng.IntN(300) {
				b.WriteRune(rune(rng.IntN(0x11000)))
			}
		}
		if rng.IntN(5) == 0 {
			raw := make([]byte, rng.IntN(40))
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			b.Write(raw)
		}
		return b.String()
	}
	good, err := env.enc.Encrypt(ctx, "orders", "pk", []byte("payload"))
	require.NoError(t, err)

	known := []error{record.ErrInvalidInput, record.ErrRecordTooLarge,
		record.ErrNotEncrypted, envelope.ErrOpen}
	isKnown := func(err error) bool {
		for _, k := range known {
			if errors.Is(err, k) {
				return true
			}
		}
		return false
	}
	var accepted, rejected int
	for i := range n {
		stream, pk := randString(), randString()
		if rng.IntN(2) == 0 {
			stream = "orders"
		}
		size := rng.IntN(2048)
		if rng.IntN(50) == 0 {
			size = 1<<20 - rng.IntN(512)
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		r, err := env.enc.Encrypt(ctx, stream, pk, data)
		if err != nil {
			require.True(t, isKnown(err), "case %d: Encrypt(%q, %q, %d bytes): undocumented error %v", i, stream, pk, size, err)
			rejected++
		} else {
			accepted++
			d, err := env.dec.Decrypt(ctx, stream, r.Data)
			require.NoError(t, err, "case %d", i)
			require.Equal(t, pk, d.PartitionKey)
			require.True(t, bytes.Equal(data, d.Data))
		}

		// Decrypt: random bytes, magic and random bytes, or the good
		// record mutated (bits flipped, cut, extended).
		var in []byte
		switch rng.IntN(3) {
		case 0:
			in = data[:rng.IntN(len(data)+1)]
		case 1:
			in = append([]byte("\xe5KS\x01"), data[:rng.IntN(len(data)+1)]...)
		default:
			in = bytes.Clone(good.Data)
			for range 1 + rng.IntN(3) {
				in[rng.IntN(len(in))] ^= byte(1 + rng.IntN(255))
			}
			switch rng.IntN(3) {
			case 0:
				in = in[:rng.IntN(len(in))]
			case 1:
				in = append(in, data[:rng.IntN(len(data)+1)]...)
			}
		}
		_, err = env.dec.Decrypt(ctx, stream, in)
		require.Error(t, err, "case %d: a mutated or random record decrypted", i)
		require.True(t, isKnown(err), "case %d: Decrypt: undocumented error %v", i, err)
		recs := []types.Record{{Data: in}, {Data: good.Data}}
		err = env.dec.DecryptRecords(ctx, "orders", recs)
		require.Error(t, err)
		require.Equal(t, "payload", string(recs[1].Data), "case %d: the good record of the batch still decrypts", i)
	}
	t.Logf("%d random calls: Encrypt accepted %d and rejected %d, Decrypt rejected all %d random or mutated records; no panic",
		n, accepted, rejected, n)
}

// TestTamperRecords tampers at the record level, where KMS and Kinesis take
// part:
//
//   - every bit of the wrapped key flipped: KMS refuses the blob, which the
//     consumer reports as envelope.ErrOpen;
//   - garbage after an envelope: Decrypt takes one record as one envelope
//     and rejects it (envelope.Parse alone would return the garbage as the
//     next envelope's bytes);
//   - the wrapped keys of two records swapped (two producers, two data
//     keys): KMS unwraps the other data key, and the tag fails;
//   - a record moved to another stream, or to the Firehose stream of the
//     same name: KMS refuses the encryption context;
//   - a record replayed with another outbound partition key and
//     ExplicitHashKey: it decrypts, to its original partition key. The
//     outbound partition key and ExplicitHashKey are not authenticated
//     (Kinesis routes by them; they carry nothing secret), so a writer to
//     the stream can replay or reorder records, or place them on another
//     shard, as with plaintext Kinesis; the partition key and payload a
//     consumer gets are always the ones sealed.
func TestTamperRecords(t *testing.T) {
	env := newBIEnv(t)
	ctx := context.Background()
	cases := 0
	r1, err := env.enc.Encrypt(ctx, "orders", "customer-1", []byte("payload one"))
	require.NoError(t, err)
	enc2, err := record.NewEncryptor(env.k, env.arn2)
	require.NoError(t, err)
	defer enc2.Close()
	r2, err := enc2.Encrypt(ctx, "orders", "customer-2", []byte("payload two"))
	require.NoError(t, err)

	e1, _, err := envelope.Parse(r1.Data)
	require.NoError(t, err)
	e2, _, err := envelope.Parse(r2.Data)
	require.NoError(t, err)

	// Every bit of the wrapped key.
	wkStart := len(r1.Data) - len(e1.WrappedKey)
	for bit := wkStart * 8; bit < len(r1.Data)*8; bit++ {
		d := bytes.Clone(r1.Data)
		d[bit/8] ^= 1 << (bit % 8)
		_, err := env.dec.Decrypt(ctx, "orders", d)
		require.Equal(t, envelope.ErrOpen, err, "bit %d of the wrapped key", bit-wkStart*8)
		cases++
	}

	// Garbage after the record.
	for _, g := range [][]byte{{0}, []byte("garbage"), r2.Data, r1.Data} {
		_, err := env.dec.Decrypt(ctx, "orders", append(bytes.Clone(r1.Data), g...))
		require.Equal(t, envelope.ErrOpen, err)
		recs := []types.Record{{Data: append(bytes.Clone(r1.Data), g...)}}
		require.ErrorIs(t, env.dec.DecryptRecords(ctx, "orders", recs), envelope.ErrOpen)
		require.Nil(t, recs[0].Data)
		cases += 2
	}

	// Swapped wrapped keys.
	for _, sw := range []struct {
		e  envelope.Envelope
		wk []byte
	}{{e1, e2.WrappedKey}, {e2, e1.WrappedKey}} {
		x := envelope.Envelope{Salt: sw.e.Salt, Body: sw.e.Body, WrappedKey: sw.wk}
		b, err := x.MarshalBinary()
		require.NoError(t, err)
		_, err = env.dec.Decrypt(ctx, "orders", b)
		require.Equal(t, envelope.ErrOpen, err, "swapped wrapped key")
		cases++
	}

	// Moved to other streams.
	for _, s := range []string{"payments", "Orders", "arn:aws:kinesis:us-east-1:111122223333:stream/payments"} {
		_, err := env.dec.Decrypt(ctx, s, r1.Data)
		require.Equal(t, envelope.ErrOpen, err, s)
		cases++
	}
	_, _, err = env.dec.DecryptFirehose(ctx, nil, "orders", r1.Data)
	require.Equal(t, envelope.ErrOpen, err, "firehose stream of the same name")
	cases++

	// Replay with another outbound partition key and hash key.
	recs := []types.Record{
		{Data: bytes.Clone(r1.Data), PartitionKey: aws.String("attacker-chosen"), SequenceNumber: aws.String("2")},
		{Data: bytes.Clone(r1.Data), PartitionKey: aws.String(r1.PartitionKey), SequenceNumber: aws.String("1")},
	}
	require.NoError(t, env.dec.DecryptRecords(ctx, "orders", recs))
	for _, r := range recs {
		require.Equal(t, "customer-1", *r.PartitionKey, "the partition key is the sealed one, not the outbound one")
		require.Equal(t, "payload one", string(r.Data))
		cases++
	}
	t.Logf("record-level tamper: %d cases (%d wrapped key bits, 8 garbage, 2 swaps, 4 moves, 2 replays), all rejected but the replays, which yield the original partition key",
		cases, len(e1.WrappedKey)*8)
}

// TestDecryptFirehoseNil: Decryptor.DecryptFirehose of nil data must not
// panic ("no panic on any caller input").
func TestDecryptFirehoseNil(t *testing.T) {
	env := newBIEnv(t)
	var panicked any
	var err error
	func() {
		defer func() { panicked = recover() }()
		_, _, err = env.dec.DecryptFirehose(context.Background(), nil, "s", nil)
	}()
	require.Nil(t, panicked, "Decryptor.DecryptFirehose(nil) must not panic")
	require.ErrorIs(t, err, record.ErrNotEncrypted)
}

// TestPutRecordsListsEveryInvalidEntry: a batch with several caller
// mistakes names each of them, with its reason, before any KMS call.
func TestPutRecordsListsEveryInvalidEntry(t *testing.T) {
	env := newBIEnv(t)
	before := env.k.Calls("GenerateDataKey")
	recs := entries(4, aws.String("pk"), 1)
	recs[1].PartitionKey = nil
	recs[3].Data = make([]byte, 2<<20)
	_, err := env.enc.PutRecords(context.Background(), &okFake{}, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: recs})
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Failed, 4)
	require.ErrorIs(t, be.Failed[0].Err, record.ErrNotSent)
	require.ErrorIs(t, be.Failed[1].Err, record.ErrInvalidInput)
	require.ErrorIs(t, be.Failed[2].Err, record.ErrNotSent)
	require.ErrorIs(t, be.Failed[3].Err, record.ErrRecordTooLarge)
	require.Equal(t, before, env.k.Calls("GenerateDataKey"), "no KMS call for a batch that cannot be sent")
}
