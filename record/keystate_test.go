package record_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// These tests drive the Encryptor and the Decryptor through a real
// *kms.Client talking to the test KMS over HTTP, so that the KMS errors are
// the SDK's own (parsed from the wire), for every key state and failure
// that Kinesis SSE reports, and check that nothing is ever sent when a
// record cannot be encrypted.

// captureKinesis is a Kinesis client that records what it is sent and
// accepts everything.
type captureKinesis struct {
	mu      sync.Mutex
	batches []*kinesis.PutRecordsInput
	singles []*kinesis.PutRecordInput
}

func (c *captureKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, in)
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0)}
	for i := range in.Records {
		out.Records = append(out.Records, types.PutRecordsResultEntry{
			ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String(fmt.Sprint(i + 1)),
		})
	}
	return out, nil
}

func (c *captureKinesis) PutRecord(_ context.Context, in *kinesis.PutRecordInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.singles = append(c.singles, in)
	return &kinesis.PutRecordOutput{ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String("1")}, nil
}

// sent returns the number of requests made.
func (c *captureKinesis) sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.batches) + len(c.singles)
}

// httpKMS serves a new test KMS over HTTP and returns it with a real
// *kms.Client for it, with retries off so that every failure is seen.
func httpKMS(t testing.TB) (*kmsfake.KMS, *kms.Client) {
	t.Helper()
	k := kmsfake.New()
	srv := kmsfake.NewServer(k)
	t.Cleanup(srv.Close)
	return k, srv.Client(func(o *kms.Options) { o.Retryer = aws.NopRetryer{} })
}

// secretBatch returns a PutRecords input of n records whose partition keys
// and payloads are recognisable, so that a test can check they never leak.
func secretBatch(stream string, n int) *kinesis.PutRecordsInput {
	in := &kinesis.PutRecordsInput{StreamName: aws.String(stream)}
	for i := range n {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("secret-customer-%d", i)),
			Data:         []byte(fmt.Sprintf("secret-payload-%d", i)),
		})
	}
	return in
}

// requireNoSecrets fails if err's message holds a partition key or payload
// of the secret batch.
func requireNoSecrets(t testing.TB, err error) {
	t.Helper()
	require.NotContains(t, err.Error(), "secret-", "an error message carries plaintext")
}

// TestEncryptorKeyStates puts a KMS key into every state, and makes every
// failure, that Kinesis SSE reports, on a cold Encryptor: PutRecords,
// PutRecord and Encrypt fail with the typed error class, PutRecords lists
// every record of the batch, nothing is sent, and once the fault is cleared
// the next call succeeds.
func TestEncryptorKeyStates(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		class error // nil: a failure of no class
		// fault puts the fault in place and returns the key to encrypt
		// with; clear removes it, or returns a key to switch to.
		fault func(k *kmsfake.KMS) (keyID string)
		clear func(k *kmsfake.KMS, keyID string) (switchTo string)
	}{
		{
			name: "Disabled", class: kmsiface.ErrKeyDisabled,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey("")
				require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateDisabled))
				return arn
			},
			clear: func(k *kmsfake.KMS, arn string) string {
				require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateEnabled))
				return ""
			},
		},
		{
			name: "PendingDeletion", class: kmsiface.ErrKeyDisabled,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey("")
				require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStatePendingDeletion))
				return arn
			},
			clear: func(k *kmsfake.KMS, arn string) string {
				// CancelKeyDeletion, then EnableKey.
				require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateEnabled))
				return ""
			},
		},
		{
			name: "AliasNotFound", class: kmsiface.ErrKeyNotFound,
			fault: func(k *kmsfake.KMS) string { return "alias/not-yet" },
			clear: func(k *kmsfake.KMS, alias string) string {
				keyID, _ := k.CreateKey("")
				require.NoError(t, k.CreateAlias(alias, keyID))
				return ""
			},
		},
		{
			name: "Deleted", class: kmsiface.ErrKeyNotFound,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey("")
				require.NoError(t, k.DeleteKey(arn))
				return arn
			},
			clear: func(k *kmsfake.KMS, _ string) string {
				_, arn := k.CreateKey("") // a deleted key is gone: switch
				return arn
			},
		},
		{
			name: "AccessDenied", class: kmsiface.ErrAccessDenied,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey("")
				require.NoError(t, k.DenyAccess(arn, "GenerateDataKey"))
				return arn
			},
			clear: func(k *kmsfake.KMS, arn string) string {
				require.NoError(t, k.AllowAccess(arn))
				return ""
			},
		},
		{
			name: "Throttling", class: kmsiface.ErrThrottling,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey("")
				k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, -1)
				return arn
			},
			clear: func(k *kmsfake.KMS, _ string) string { k.ClearFaults(); return "" },
		},
		{
			name: "Asymmetric", class: kmsiface.ErrInvalidKey,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey(kmstypes.KeySpecRsa2048)
				return arn
			},
			clear: func(k *kmsfake.KMS, _ string) string {
				_, arn := k.CreateKey("") // an RSA key never wraps data keys: switch
				return arn
			},
		},
		{
			name: "Unavailable", class: nil,
			fault: func(k *kmsfake.KMS) string {
				_, arn := k.CreateKey("")
				k.InjectFault("", kmsfake.Fault{Status: 503}, -1)
				return arn
			},
			clear: func(k *kmsfake.KMS, _ string) string { k.ClearFaults(); return "" },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, client := httpKMS(t)
			keyID := tc.fault(k)
			enc, err := record.NewEncryptor(client, keyID)
			require.NoError(t, err)
			defer enc.Close()
			dec, err := record.NewDecryptor(client, anyKey)
			require.NoError(t, err)
			defer dec.Close()
			kin := &captureKinesis{}
			in := secretBatch("orders", 3)

			out, err := enc.PutRecords(ctx, kin, in)
			require.Error(t, err)
			require.Nil(t, out)
			checkClass(t, err, tc.class)
			var be *record.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, "PutRecords", be.Op)
			require.Equal(t, []int{0, 1, 2}, be.Indexes(), "every record of the batch is listed")
			for _, f := range be.Failed {
				require.True(t, errors.Is(f.Err, record.ErrNotSent) || errorHasClass(f.Err, tc.class), "record %d: %v", f.Index, f.Err)
			}
			requireNoSecrets(t, err)

			_, err = enc.PutRecord(ctx, kin, &kinesis.PutRecordInput{
				StreamName: aws.String("orders"), PartitionKey: aws.String("secret-customer-x"), Data: []byte("secret-payload-x"),
			})
			checkClass(t, err, tc.class)
			requireNoSecrets(t, err)
			r, err := enc.Encrypt(ctx, "orders", "secret-customer-y", []byte("secret-payload-y"))
			checkClass(t, err, tc.class)
			require.Equal(t, record.Encrypted{}, r, "nothing returned on failure")
			require.Zero(t, kin.sent(), "nothing may be sent when encryption fails")
			require.Equal(t, 0, enc.Stats().Entries)

			// The fault clears: the next call succeeds.
			if switchTo := tc.clear(k, keyID); switchTo != "" {
				require.NoError(t, enc.SetKeyID(ctx, switchTo))
			}
			out, err = enc.PutRecords(ctx, kin, in)
			require.NoError(t, err)
			require.Zero(t, aws.ToInt32(out.FailedRecordCount))
			require.Len(t, kin.batches, 1)
			for i, sent := range kin.batches[0].Records {
				d, err := dec.Decrypt(ctx, "orders", sent.Data)
				require.NoError(t, err)
				require.Equal(t, *in.Records[i].PartitionKey, d.PartitionKey)
				require.Equal(t, in.Records[i].Data, d.Data)
			}
		})
	}
}

// checkClass requires err to be a KMS failure of class (nil: of no class).
func checkClass(t testing.TB, err error, class error) {
	t.Helper()
	require.Error(t, err)
	var ke *kmsiface.Error
	require.ErrorAs(t, err, &ke)
	if class == nil {
		require.Nil(t, kmsiface.ClassOf(err), "%v", err)
		return
	}
	require.ErrorIs(t, err, class)
}

func errorHasClass(err, class error) bool {
	var ke *kmsiface.Error
	if !errors.As(err, &ke) {
		return false
	}
	return class == nil && ke.Class == nil || class != nil && errors.Is(err, class)
}

// TestEncryptorKeyDisabledWhileWarm: a key disabled while an Encryptor
// holds one of its data keys stops it when that data key expires (as
// Kinesis SSE stops at its next data key), not before; it fails closed then.
func TestEncryptorKeyDisabledWhileWarm(t *testing.T) {
	ctx := context.Background()
	k, client := httpKMS(t)
	_, arn := k.CreateKey("")
	clk := newTestClock()
	enc, err := record.NewEncryptor(client, arn, func(o *record.EncryptorOptions) { o.Now = clk.Now })
	require.NoError(t, err)
	defer enc.Close()
	kin := &captureKinesis{}

	_, err = enc.PutRecords(ctx, kin, secretBatch("orders", 2))
	require.NoError(t, err)
	require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateDisabled))
	clk.Advance(keycache.DefaultTTL - time.Second)
	_, err = enc.PutRecords(ctx, kin, secretBatch("orders", 2)) // also starts a refresh, which fails
	require.NoError(t, err)
	eventually(t, "the refresh to fail", func() bool { return enc.Stats().Failures["KeyDisabled"] == 1 })

	clk.Advance(time.Second)
	_, err = enc.PutRecords(ctx, kin, secretBatch("orders", 2))
	require.ErrorIs(t, err, kmsiface.ErrKeyDisabled)
	require.Len(t, kin.batches, 2, "nothing sent after the data key expired")
}

// TestPutRecordsRetriesAbsorbThrottling: with the SDK's standard retryer (no
// backoff, to keep the test fast), a throttled GenerateDataKey is retried
// by the client and the batch goes through.
func TestPutRecordsRetriesAbsorbThrottling(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	srv := kmsfake.NewServer(k)
	defer srv.Close()
	client := srv.Client(func(o *kms.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	_, arn := k.CreateKey("")
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, 2)
	enc, err := record.NewEncryptor(client, arn)
	require.NoError(t, err)
	defer enc.Close()
	kin := &captureKinesis{}
	_, err = enc.PutRecords(ctx, kin, secretBatch("orders", 3))
	require.NoError(t, err)
	require.Equal(t, int64(3), k.Calls("GenerateDataKey"), "two throttled attempts, one success")
	require.Equal(t, uint64(1), enc.Stats().KMSCalls, "one call as the cache sees it")
	require.Len(t, kin.batches, 1)
}

// TestPutRecordsKMSFailureCallsKMSOnce: a batch that cannot be sent because
// KMS fails must not ask KMS again for each of its records: during a KMS
// outage or throttling, a 500-record batch would otherwise make 500
// GenerateDataKey calls (each with the SDK's retries and backoff), adding
// to the throttling and delaying the error by minutes.
func TestPutRecordsKMSFailureCallsKMSOnce(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	_, arn := k.CreateKey("")
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, -1)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	defer enc.Close()
	kin := &captureKinesis{}
	_, err = enc.PutRecords(ctx, kin, secretBatch("orders", record.MaxPutRecordsEntries))
	require.ErrorIs(t, err, kmsiface.ErrThrottling)
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Failed, record.MaxPutRecordsEntries)
	require.Zero(t, kin.sent())
	require.LessOrEqual(t, k.Calls("GenerateDataKey"), int64(1))
}

// TestDecryptorKeyStates: records of two KMS keys in one batch; one key is
// put into a failing state after the records were produced. The records of
// that key fail, each with the typed class, and are left without data; the
// records of the other key decrypt. Once the fault clears, the failed
// records decrypt too (key states are not remembered as failures).
func TestDecryptorKeyStates(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		class error
		fault func(k *kmsfake.KMS, arn string)
		clear func(k *kmsfake.KMS, arn string) // nil: the fault is permanent
	}{
		{"Disabled", kmsiface.ErrKeyDisabled,
			func(k *kmsfake.KMS, arn string) { require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateDisabled)) },
			func(k *kmsfake.KMS, arn string) { require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateEnabled)) }},
		{"PendingDeletion", kmsiface.ErrKeyDisabled,
			func(k *kmsfake.KMS, arn string) {
				require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStatePendingDeletion))
			},
			func(k *kmsfake.KMS, arn string) { require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateEnabled)) }},
		{"AccessDenied", kmsiface.ErrAccessDenied,
			func(k *kmsfake.KMS, arn string) { require.NoError(t, k.DenyAccess(arn, "Decrypt")) },
			func(k *kmsfake.KMS, arn string) { require.NoError(t, k.AllowAccess(arn)) }},
		{"Deleted", kmsiface.ErrKeyNotFound,
			func(k *kmsfake.KMS, arn string) { require.NoError(t, k.DeleteKey(arn)) },
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, client := httpKMS(t)
			_, arnA := k.CreateKey("")
			_, arnB := k.CreateKey("")
			encA, err := record.NewEncryptor(client, arnA)
			require.NoError(t, err)
			defer encA.Close()
			encB, err := record.NewEncryptor(client, arnB)
			require.NoError(t, err)
			defer encB.Close()

			const n = 6 // even records under key A, odd under key B
			var raw []types.Record
			for i := range n {
				enc := encA
				if i%2 == 1 {
					enc = encB
				}
				r, err := enc.Encrypt(ctx, "orders", fmt.Sprintf("secret-customer-%d", i), []byte(fmt.Sprintf("secret-payload-%d", i)))
				require.NoError(t, err)
				raw = append(raw, types.Record{Data: r.Data, PartitionKey: aws.String(r.PartitionKey), SequenceNumber: aws.String(fmt.Sprint(i))})
			}
			tc.fault(k, arnA)

			clk := newTestClock()
			dec, err := record.NewDecryptor(client, func(o *record.DecryptorOptions) {
				o.AllowedKeys = []string{arnA, arnB}
				o.Now = clk.Now
			})
			require.NoError(t, err)
			defer dec.Close()
			recs := cloneRecords(raw)
			err = dec.DecryptRecords(ctx, "orders", recs)
			var be *record.BatchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, "DecryptRecords", be.Op)
			require.Equal(t, []int{0, 2, 4}, be.Indexes())
			for _, f := range be.Failed {
				checkClass(t, f.Err, tc.class)
				require.Nil(t, recs[f.Index].Data, "a failed record keeps no data")
				require.Equal(t, record.OutboundPartitionKey, *recs[f.Index].PartitionKey)
			}
			requireNoSecrets(t, err)
			for i := 1; i < n; i += 2 {
				require.Equal(t, fmt.Sprintf("secret-payload-%d", i), string(recs[i].Data))
				require.Equal(t, fmt.Sprintf("secret-customer-%d", i), *recs[i].PartitionKey)
				require.Equal(t, types.EncryptionTypeKms, recs[i].EncryptionType)
			}

			recs = cloneRecords(raw)
			if tc.clear == nil {
				err := dec.DecryptRecords(ctx, "orders", recs)
				require.ErrorAs(t, err, &be)
				require.Equal(t, []int{0, 2, 4}, be.Indexes(), "records of a deleted key are lost")
				return
			}
			tc.clear(k, arnA)
			if record.IsPermanent(be.Failed[0].Err) {
				// A refusal is remembered for NegativeTTL.
				require.Error(t, dec.DecryptRecords(ctx, "orders", recs))
				clk.Advance(defaultNegativeTTL)
				recs = cloneRecords(raw)
			}
			require.NoError(t, dec.DecryptRecords(ctx, "orders", recs))
			for i, r := range recs {
				require.Equal(t, fmt.Sprintf("secret-payload-%d", i), string(r.Data))
			}
		})
	}
}

// TestDecryptorKeyDisabledWhileWarm: a consumer that already unwrapped a
// data key keeps decrypting its records until the TTL, even if the KMS key
// is disabled meanwhile, and fails closed after.
func TestDecryptorKeyDisabledWhileWarm(t *testing.T) {
	ctx := context.Background()
	k, client := httpKMS(t)
	_, arn := k.CreateKey("")
	clk := newTestClock()
	enc, err := record.NewEncryptor(client, arn, func(o *record.EncryptorOptions) { o.Now = clk.Now })
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(client, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn}; o.Now = clk.Now })
	require.NoError(t, err)
	defer dec.Close()

	r1, err := enc.Encrypt(ctx, "orders", "pk", []byte("one"))
	require.NoError(t, err)
	_, err = dec.Decrypt(ctx, "orders", r1.Data)
	require.NoError(t, err)
	require.NoError(t, k.SetKeyState(arn, kmstypes.KeyStateDisabled))
	r2, err := enc.Encrypt(ctx, "orders", "pk", []byte("two")) // same data key
	require.NoError(t, err)
	d, err := dec.Decrypt(ctx, "orders", r2.Data)
	require.NoError(t, err)
	require.Equal(t, "two", string(d.Data))

	clk.Advance(keycache.DefaultTTL)
	_, err = dec.Decrypt(ctx, "orders", r2.Data)
	require.ErrorIs(t, err, kmsiface.ErrKeyDisabled)
}

// TestDecryptorMovedRecord: over the wire too, a record replayed on another
// stream fails as not authentic (KMS refuses the wrapped key for the other
// stream's encryption context), and so does a record whose wrapped key was
// swapped for another valid one.
func TestDecryptorMovedRecord(t *testing.T) {
	ctx := context.Background()
	k, client := httpKMS(t)
	_, arn := k.CreateKey("")
	enc, err := record.NewEncryptor(client, arn)
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(client, anyKey)
	require.NoError(t, err)
	defer dec.Close()

	r, err := enc.Encrypt(ctx, "orders", "pk", []byte("payload"))
	require.NoError(t, err)
	_, err = dec.Decrypt(ctx, "payments", r.Data)
	require.Equal(t, envelope.ErrOpen, err)

	// Another data key's wrapped key, for the same stream, spliced in.
	other, err := record.NewEncryptor(client, arn)
	require.NoError(t, err)
	defer other.Close()
	r2, err := other.Encrypt(ctx, "orders", "pk", []byte("payload"))
	require.NoError(t, err)
	e1, _, err := envelope.Parse(r.Data)
	require.NoError(t, err)
	e2, _, err := envelope.Parse(r2.Data)
	require.NoError(t, err)
	require.Equal(t, len(e1.WrappedKey), len(e2.WrappedKey))
	spliced := bytes.Clone(r.Data)
	copy(spliced[len(spliced)-len(e1.WrappedKey):], e2.WrappedKey)
	_, err = dec.Decrypt(ctx, "orders", spliced)
	require.Equal(t, envelope.ErrOpen, err)
	d, err := dec.Decrypt(ctx, "orders", r.Data)
	require.NoError(t, err)
	require.Equal(t, "payload", string(d.Data))
	require.False(t, strings.Contains(string(r.Data), "payload"))
}

// cloneRecords copies records deeply enough for DecryptRecords to work on
// the copy.
func cloneRecords(in []types.Record) []types.Record {
	out := make([]types.Record, len(in))
	for i, r := range in {
		out[i] = r
		out[i].Data = bytes.Clone(r.Data)
		pk := aws.ToString(r.PartitionKey)
		out[i].PartitionKey = &pk
	}
	return out
}

// testClock is a clock that tests advance by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// eventually polls cond for up to 5 s, for background work that the test
// cannot otherwise wait for.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
