// Package telemetry emits ksse's metrics and spans through the SDK's own
// interfaces (github.com/aws/smithy-go/metrics and tracing), which users
// plug OpenTelemetry into with smithy-go's adapters. A nil *Telemetry does
// nothing and costs nothing.
//
// Package record documents the instruments and spans (Metrics).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
)

// Scope is the instrumentation scope of ksse's meter and tracer.
const Scope = "github.com/ksse-go/ksse"

// Telemetry holds the instruments of one Encryptor or Decryptor.
type Telemetry struct {
	tracer                                tracing.Tracer
	encrypted, decrypted, rejected, fails metrics.Int64Counter
	kmsCalls                              metrics.Int64Counter
	kmsDuration                           metrics.Float64Histogram
	async                                 []metrics.AsyncInstrument
}

// Stats reads cache counters for the asynchronous instruments.
type Stats func() (hits, misses uint64)

// New returns the instruments of mp and tp, or nil if both are nil. side
// ("producer" or "consumer") is the ksse.side of the cache instruments. A
// provider that fails or panics is an error.
func New(mp metrics.MeterProvider, tp tracing.TracerProvider, side string, stats Stats) (t *Telemetry, err error) {
	if mp == nil && tp == nil {
		return nil, nil
	}
	defer func() {
		if r := recover(); r != nil {
			t.Stop() // what was registered before the panic
			t, err = nil, fmt.Errorf("MeterProvider or TracerProvider panicked: %v", r)
		}
	}()
	t = &Telemetry{}
	if tp == nil {
		tp = tracing.NopTracerProvider{}
	}
	if t.tracer = tp.Tracer(Scope); t.tracer == nil {
		return nil, errors.New("TracerProvider returned a nil Tracer")
	}
	if mp == nil {
		mp = metrics.NopMeterProvider{}
	}
	m := mp.Meter(Scope)
	if m == nil {
		return nil, errors.New("MeterProvider returned a nil Meter")
	}
	counter := func(name, unit, desc string) metrics.Int64Counter {
		c, e := m.Int64Counter(name, func(o *metrics.InstrumentOptions) { o.UnitLabel, o.Description = unit, desc })
		if e == nil && c == nil {
			e = errors.New("nil instrument")
		}
		if e != nil && err == nil {
			err = fmt.Errorf("MeterProvider: %s: %w", name, e)
		}
		return c
	}
	t.encrypted = counter("ksse.records.encrypted", "{record}", "Records encrypted.")
	t.decrypted = counter("ksse.records.decrypted", "{record}", "Records decrypted and authenticated.")
	t.rejected = counter("ksse.records.rejected", "{record}", "Records that will never decrypt.")
	t.fails = counter("ksse.records.failed", "{record}", "Records that failed for now; retry them.")
	t.kmsCalls = counter("ksse.kms.calls", "{call}", "KMS calls, by result.")
	t.kmsDuration, err = histogram(m, err)
	if err != nil {
		return nil, err
	}
	if stats != nil {
		for _, c := range []struct {
			name string
			read func(h, m uint64) uint64
		}{
			{"ksse.cache.hits", func(h, _ uint64) uint64 { return h }},
			{"ksse.cache.misses", func(_, m uint64) uint64 { return m }},
		} {
			a, e := m.Int64AsyncCounter(c.name, func(ctx context.Context, o metrics.Int64Observer) {
				o.Observe(ctx, int64(c.read(stats())), attrs("ksse.side", side))
			}, func(o *metrics.InstrumentOptions) { o.UnitLabel, o.Description = "{lookup}", "Key cache lookups." })
			if e != nil {
				t.Stop()
				return nil, fmt.Errorf("MeterProvider: %s: %w", c.name, e)
			}
			if a != nil {
				t.async = append(t.async, a)
			}
		}
	}
	return t, nil
}

func histogram(m metrics.Meter, err error) (metrics.Float64Histogram, error) {
	if err != nil {
		return nil, err
	}
	h, err := m.Float64Histogram("ksse.kms.duration", func(o *metrics.InstrumentOptions) {
		o.UnitLabel, o.Description = "s", "Duration of KMS calls."
	})
	if err == nil && h == nil {
		err = errors.New("nil instrument")
	}
	if err != nil {
		return nil, fmt.Errorf("MeterProvider: ksse.kms.duration: %w", err)
	}
	return h, nil
}

// Stop unregisters the asynchronous instruments.
func (t *Telemetry) Stop() {
	if t == nil {
		return
	}
	for _, a := range t.async {
		a.Stop()
	}
}

func attrs(kv ...string) metrics.RecordMetricOption {
	return func(o *metrics.RecordMetricOptions) {
		for i := 0; i+1 < len(kv); i += 2 {
			o.Properties.Set(kv[i], kv[i+1])
		}
	}
}

// Encrypted counts n records encrypted for stream.
func (t *Telemetry) Encrypted(ctx context.Context, stream string, n int) {
	if t != nil && n > 0 {
		t.encrypted.Add(ctx, int64(n), attrs("ksse.stream", stream))
	}
}

// Decrypted counts n records decrypted from stream.
func (t *Telemetry) Decrypted(ctx context.Context, stream string, n int) {
	if t != nil && n > 0 {
		t.decrypted.Add(ctx, int64(n), attrs("ksse.stream", stream))
	}
}

// Rejected counts a record of stream that will never decrypt, for reason.
func (t *Telemetry) Rejected(ctx context.Context, stream, reason string) {
	if t != nil {
		t.rejected.Add(ctx, 1, attrs("ksse.stream", stream, "ksse.reason", reason))
	}
}

// Failed counts n records of stream that failed for now.
func (t *Telemetry) Failed(ctx context.Context, stream string, n int) {
	if t != nil && n > 0 {
		t.fails.Add(ctx, int64(n), attrs("ksse.stream", stream))
	}
}

// KMSCall records a KMS call of op that took d and ended with result
// ("ok" or an error class).
func (t *Telemetry) KMSCall(op string, d time.Duration, result string) {
	if t == nil {
		return
	}
	ctx := context.Background()
	t.kmsCalls.Add(ctx, 1, attrs("kms.operation", op, "ksse.result", result))
	t.kmsDuration.Record(ctx, d.Seconds(), attrs("kms.operation", op))
}

// Span starts a span named name for a batch of n records of stream. The
// returned end function takes the number of failed records and ends it.
func (t *Telemetry) Span(ctx context.Context, name, stream string, n int) (context.Context, func(failed int)) {
	if t == nil {
		return ctx, func(int) {}
	}
	ctx, span := t.tracer.StartSpan(ctx, name, func(o *tracing.SpanOptions) { o.Kind = tracing.SpanKindInternal })
	span.SetProperty("ksse.stream", stream)
	span.SetProperty("ksse.records", n)
	return ctx, func(failed int) {
		span.SetProperty("ksse.failed", failed)
		if failed > 0 {
			span.SetStatus(tracing.SpanStatusError)
		} else {
			span.SetStatus(tracing.SpanStatusOK)
		}
		span.End()
	}
}
