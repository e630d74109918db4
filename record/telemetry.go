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

// hookKMSCalls makes the cache of options c report its KMS calls to the
// telemetry that tel returns once built (before any call is made), if
// there are providers.
func hookKMSCalls(c *keycache.Options, mp metrics.MeterProvider, tp tracing.TracerProvider, tel func() *telemetry.Telemetry) {
	if mp == nil && tp == nil {
		return
	}
	next := c.OnKMSCall
	c.OnKMSCall = func(op string, d time.Duration, err error) {
		tel().KMSCall(op, d, kmsResult(err))
		if next != nil {
			next(op, d, err)
		}
	}
}

// kmsResults are the ksse.result values of KMS calls: Firehose's metric
// names where it has them.
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

func kmsResult(err error) string {
	if err == nil {
		return "ok"
	}
	return kmsResults[keycache.FailureClass(err)]
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
