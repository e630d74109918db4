package record

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/telemetry"
	"github.com/ksse-go/ksse/keycache"
)

// newTelemetry returns the instruments of the providers given, or nil,
// which costs nothing, when both are nil.
func newTelemetry(mp metrics.MeterProvider, tp tracing.TracerProvider, side string, stats func() keycache.Stats) (*telemetry.Telemetry, error) {
	t, err := telemetry.New(mp, tp, side, func() (uint64, uint64) {
		st := stats()
		return st.Hits, st.Misses
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return t, nil
}

// kmsCallHook returns the OnKMSCall of a key cache: it reports each KMS
// call to the telemetry that tel returns once built (before any call is
// made). It returns nil without providers.
func kmsCallHook(mp metrics.MeterProvider, tp tracing.TracerProvider, tel func() *telemetry.Telemetry) func(string, time.Duration, string) {
	if mp == nil && tp == nil {
		return nil
	}
	return func(op string, d time.Duration, class string) {
		tel().KMSCall(op, d, kmsResult(class))
	}
}

// kmsResults are the ksse.result values of KMS calls, by failure class of
// the key cache: Firehose's metric names where it has them.
var kmsResults = map[string]string{
	"AccessDenied":      "KMSKeyAccessDenied",
	"KeyDisabled":       "KMSKeyDisabled",
	"InvalidKeyState":   "KMSKeyInvalidState",
	"KeyNotFound":       "KMSKeyNotFound",
	"Throttling":        "KMSThrottling",
	"OptInRequired":     "KMSOptInRequired",
	"InvalidKey":        "KMSInvalidKey",
	"NotAllowed":        "KMSNotAllowed",
	"InvalidCiphertext": "KMSInvalidCiphertext",
	"Other":             "KMSOther",
}

func kmsResult(class string) string {
	if class == "" {
		return "ok"
	}
	return kmsResults[class]
}

// rejectReason is the ksse.reason of a record that will never decrypt.
func rejectReason(err error) string {
	switch {
	case errors.Is(err, envelope.ErrOpen):
		return "not_authentic"
	case errors.Is(err, ErrNotEncrypted):
		return "not_encrypted"
	case errors.Is(err, keycache.ErrNotAllowed):
		return "key_not_allowed"
	}
	return "kms_refused"
}

// countDecrypt counts one record of stream: decrypted if err is nil,
// else rejected or failed.
func countDecrypt(ctx context.Context, t *telemetry.Telemetry, stream string, err error) {
	switch {
	case t == nil:
	case err == nil:
		t.Decrypted(ctx, stream, 1)
	case IsPermanent(err):
		t.Rejected(ctx, stream, rejectReason(err))
	default:
		t.Failed(ctx, stream, 1)
	}
}
