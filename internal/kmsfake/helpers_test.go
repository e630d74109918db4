package kmsfake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
)

// client is what the tests call: kmsiface.Client plus Encrypt.
type client interface {
	kmsiface.Client
	Encrypt(ctx context.Context, params *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
}

var (
	_ kmsiface.Client = (*kmsfake.KMS)(nil)
	_ client          = (*kmsfake.KMS)(nil)
	_ client          = (*kms.Client)(nil)
)

// noRetries turns the SDK's retries off, so that a test sees every failure.
func noRetries(o *kms.Options) { o.Retryer = aws.NopRetryer{} }

// fastRetries keeps the SDK's standard retryer (3 attempts, the same
// retryable errors) without its backoff, so that tests stay fast.
func fastRetries(o *kms.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	})
}

func newServer(t testing.TB, k *kmsfake.KMS) *kmsfake.Server {
	srv := kmsfake.NewServer(k)
	t.Cleanup(srv.Close)
	return srv
}

// both runs f twice in parallel, each time with a new KMS: once calling it
// in process, once through a real *kms.Client (retries off) and a Server.
func both(t *testing.T, f func(t *testing.T, k *kmsfake.KMS, c client)) {
	t.Helper()
	t.Run("inprocess", func(t *testing.T) {
		t.Parallel()
		k := kmsfake.New()
		f(t, k, k)
	})
	t.Run("http", func(t *testing.T) {
		t.Parallel()
		k := kmsfake.New()
		f(t, k, newServer(t, k).Client(noRetries))
	})
}

// requireCode requires err to be a KMS error with the given code.
func requireCode(t testing.TB, err error, code string) {
	t.Helper()
	require.Error(t, err)
	var api smithy.APIError
	require.True(t, errors.As(err, &api), "%v (%T) is not an API error", err, err)
	require.Equal(t, code, api.ErrorCode(), "error: %v", err)
}

func generate(t testing.TB, c client, keyID string, ec map[string]string) *kms.GenerateDataKeyOutput {
	t.Helper()
	out, err := c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{
		KeyId:             aws.String(keyID),
		KeySpec:           "AES_256",
		EncryptionContext: ec,
	})
	require.NoError(t, err)
	return out
}

func decrypt(c client, blob []byte, ec map[string]string) (*kms.DecryptOutput, error) {
	return c.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec})
}
