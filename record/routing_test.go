package record_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"math/big"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// macCounter counts the GenerateMac calls of a *kms.Client.
type macCounter struct {
	*kms.Client
	n atomic.Int64
}

func (m *macCounter) GenerateMac(ctx context.Context, in *kms.GenerateMacInput, optFns ...func(*kms.Options)) (*kms.GenerateMacOutput, error) {
	m.n.Add(1)
	return m.Client.GenerateMac(ctx, in, optFns...)
}

// TestKeyedRouting, against moto's KMS: with RoutingKey, two producers give
// a partition key the same ExplicitHashKey, which is the HMAC the spec
// names (not the MD5 of the key), different per stream; one GenerateMac
// call per stream and TTL; a key that is not HMAC_256 fails the first
// record and nothing is sent.
func TestKeyedRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := emulatortest.Shared(t, emulator.Moto).AWSConfig()
	kc := kms.NewFromConfig(cfg)
	dataKey, err := kc.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	hmacKey, err := kc.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecHmac256, KeyUsage: kmstypes.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err)
	routing := aws.ToString(hmacKey.KeyMetadata.Arn)

	clk := newFakeClock()
	producer := func() (*record.Encryptor, *macCounter) {
		m := &macCounter{Client: kc}
		enc, err := record.NewEncryptor(m, aws.ToString(dataKey.KeyMetadata.Arn), func(o *record.EncryptorOptions) {
			o.RoutingKey = routing
			o.Now = clk.Now
		})
		require.NoError(t, err)
		t.Cleanup(func() { enc.Close() })
		return enc, m
	}
	p1, m1 := producer()
	p2, _ := producer()

	mac, err := kc.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: &routing, MacAlgorithm: kmstypes.MacAlgorithmSpecHmacSha256,
		Message: []byte("ksse v1 routing key\x00kinesis:orders")})
	require.NoError(t, err)
	want := func(pk string) string {
		h := hmac.New(sha256.New, mac.Mac)
		h.Write([]byte(pk))
		return string(hashkey.AppendDigest(nil, h.Sum(nil)))
	}
	for _, pk := range []string{"user-1", "user-2", "alice@example.com"} {
		r1, err := p1.Encrypt(ctx, "orders", pk, []byte("x"))
		require.NoError(t, err)
		r2, err := p2.Encrypt(ctx, "arn:aws:kinesis:us-east-1:123456789012:stream/orders", pk, []byte("y"))
		require.NoError(t, err)
		require.Equal(t, r1.ExplicitHashKey, r2.ExplicitHashKey, "every producer routes a key alike")
		require.Equal(t, want(pk), r1.ExplicitHashKey)
		require.NotEqual(t, hashkey.Of(pk), r1.ExplicitHashKey, "not the MD5 a dictionary recovers")
		h, ok := new(big.Int).SetString(r1.ExplicitHashKey, 10)
		require.True(t, ok)
		require.LessOrEqual(t, h.BitLen(), 128)
		other, err := p1.Encrypt(ctx, "payments", pk, []byte("z"))
		require.NoError(t, err)
		require.NotEqual(t, r1.ExplicitHashKey, other.ExplicitHashKey, "per stream")
	}
	require.Equal(t, int64(2), m1.n.Load(), "one GenerateMac per stream")
	clk.Advance(5 * time.Minute)
	_, err = p1.Encrypt(ctx, "orders", "user-1", nil)
	require.NoError(t, err)
	require.Equal(t, int64(3), m1.n.Load(), "and per TTL")

	// PutRecords routes each entry the same way, and keeps a caller's own
	// ExplicitHashKey.
	f := &fakeKinesis{}
	_, err = p1.PutRecords(ctx, f, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("user-1"), Data: []byte("a")},
		{PartitionKey: aws.String("user-2"), Data: []byte("b"), ExplicitHashKey: aws.String("42")},
	}})
	require.NoError(t, err)
	sent := f.got[len(f.got)-1].Records
	require.Equal(t, want("user-1"), aws.ToString(sent[0].ExplicitHashKey))
	require.Equal(t, "42", aws.ToString(sent[1].ExplicitHashKey))

	// A routing key that is not an HMAC_256 key: the first record fails
	// before anything is sent.
	for _, spec := range []kmstypes.KeySpec{kmstypes.KeySpecSymmetricDefault, kmstypes.KeySpecHmac384} {
		in := &kms.CreateKeyInput{KeySpec: spec}
		if spec != kmstypes.KeySpecSymmetricDefault {
			in.KeyUsage = kmstypes.KeyUsageTypeGenerateVerifyMac
		}
		bad, err := kc.CreateKey(ctx, in)
		require.NoError(t, err)
		enc, err := record.NewEncryptor(kc, aws.ToString(dataKey.KeyMetadata.Arn), func(o *record.EncryptorOptions) {
			o.RoutingKey = aws.ToString(bad.KeyMetadata.Arn)
		})
		require.NoError(t, err)
		f := &fakeKinesis{}
		_, err = enc.PutRecords(ctx, f, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("user-1"), Data: []byte("a")},
		}})
		require.Error(t, err, spec)
		require.ErrorIs(t, err, kmsiface.ErrInvalidKey, "%s: %v", spec, err)
		require.ErrorContains(t, err, "must be an HMAC_256 KMS key")
		require.Empty(t, f.got, "nothing sent")
		enc.Close()
	}

	// A client without GenerateMac is refused at construction.
	_, err = record.NewEncryptor(kmsfake.New(), "k", func(o *record.EncryptorOptions) { o.RoutingKey = routing })
	require.ErrorIs(t, err, record.ErrInvalidInput)
}

// localMAC is a KMS whose GenerateMac is computed in process, for the
// benchmark: kmstest has no HMAC keys. It fails while *down is set.
type localMAC struct {
	*kmsfake.KMS
	down  *atomic.Bool
	calls *atomic.Int64
}

func (l localMAC) GenerateMac(_ context.Context, in *kms.GenerateMacInput, _ ...func(*kms.Options)) (*kms.GenerateMacOutput, error) {
	if l.calls != nil {
		l.calls.Add(1)
	}
	if l.down != nil && l.down.Load() {
		return nil, &kmstypes.KMSInternalException{Message: aws.String("down")}
	}
	h := hmac.New(sha256.New, []byte("routing key material"))
	h.Write(in.Message)
	return &kms.GenerateMacOutput{Mac: h.Sum(nil), KeyId: in.KeyId}, nil
}

func (l localMAC) DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	if aws.ToString(in.KeyId) == "routing" {
		return &kms.DescribeKeyOutput{KeyMetadata: &kmstypes.KeyMetadata{KeyId: in.KeyId,
			KeySpec: kmstypes.KeySpecHmac256, KeyUsage: kmstypes.KeyUsageTypeGenerateVerifyMac}}, nil
	}
	return l.KMS.DescribeKey(ctx, in, optFns...)
}

// BenchmarkEncryptRouting is Encrypt of a 100-byte record with a warm
// cache, routed by MD5 (the Kinesis hash key) and by keyed routing.
func BenchmarkEncryptRouting(b *testing.B) {
	for _, mode := range []string{"md5", "hmac"} {
		b.Run(mode, func(b *testing.B) {
			k := localMAC{KMS: kmsfake.New()}
			_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
			enc, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) {
				if mode == "hmac" {
					o.RoutingKey = "routing"
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			ctx := context.Background()
			payload := make([]byte, 100)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.Encrypt(ctx, "bench", "user-00012345", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRoutingThroughKMSOutage: the routing secret is a function of the key
// and the stream, so a GenerateMac failure when it is due again keeps the
// one fetched before (and asks again after RefreshRetry); with none
// fetched yet, the record fails and nothing is sent.
func TestRoutingThroughKMSOutage(t *testing.T) {
	ctx := context.Background()
	var down atomic.Bool
	var calls atomic.Int64
	k := localMAC{KMS: kmsfake.New(), down: &down, calls: &calls}
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	clk := newFakeClock()
	enc, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) {
		o.RoutingKey = "routing"
		o.Now = clk.Now
	})
	require.NoError(t, err)
	defer enc.Close()

	down.Store(true)
	_, err = enc.Encrypt(ctx, "orders", "user-1", nil)
	require.Error(t, err, "no secret yet")

	down.Store(false)
	r1, err := enc.Encrypt(ctx, "orders", "user-1", nil)
	require.NoError(t, err)
	require.Equal(t, int64(2), calls.Load())

	clk.Advance(4 * time.Minute) // the data key is refreshed ahead; the secret is due
	clk.Advance(time.Minute)
	down.Store(true)
	r2, err := enc.Encrypt(ctx, "orders", "user-1", nil)
	require.NoError(t, err, "the secret fetched before is kept")
	require.Equal(t, r1.ExplicitHashKey, r2.ExplicitHashKey)
	require.Equal(t, int64(3), calls.Load())
	_, err = enc.Encrypt(ctx, "orders", "user-1", nil)
	require.NoError(t, err)
	require.Equal(t, int64(3), calls.Load(), "not asked again before RefreshRetry")
	clk.Advance(5 * time.Second)
	down.Store(false)
	_, err = enc.Encrypt(ctx, "orders", "user-1", nil)
	require.NoError(t, err)
	require.Equal(t, int64(4), calls.Load())
}
