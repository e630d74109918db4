// Command otel shows the OpenTelemetry wiring of ksse's metrics and spans:
// the OpenTelemetry SDK's providers, adapted to the smithy-go interfaces
// that aws-sdk-go-v2 and ksse take, given to an Encryptor and a Decryptor.
// It runs in process, against the fake KMS of package kmstest, and prints
// what a reader collected.
//
//	go run .
//
// It is a module of its own so that the library does not depend on
// OpenTelemetry.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sort"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go/metrics/smithyotelmetrics"
	"github.com/aws/smithy-go/tracing/smithyoteltracing"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/record"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(w io.Writer) error {
	ctx := context.Background()

	// OpenTelemetry: a metric reader and a span recorder. A real program
	// would use an OTLP or Prometheus exporter instead.
	reader := sdkmetric.NewManualReader()
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tracers := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

	// The same adapters the SDK's clients take (kinesis.Options.MeterProvider).
	mp := smithyotelmetrics.Adapt(meters)
	tp := smithyoteltracing.Adapt(tracers)

	kms := kmstest.New()
	_, keyARN := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(kms, keyARN, func(o *record.EncryptorOptions) {
		o.MeterProvider, o.TracerProvider = mp, tp
	})
	if err != nil {
		return err
	}
	defer enc.Close()
	dec, err := record.NewDecryptor(kms, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{keyARN}
		o.MeterProvider, o.TracerProvider = mp, tp
	})
	if err != nil {
		return err
	}
	defer dec.Close()

	var batch [][]byte
	for i := range 3 {
		r, err := enc.Encrypt(ctx, "orders", fmt.Sprintf("customer-%d", i), []byte(`{"order":1}`))
		if err != nil {
			return err
		}
		batch = append(batch, r.Data)
	}
	batch = append(batch, []byte(`{"refund":1000000}`)) // a forged plaintext record
	if _, err := dec.DecryptBatch(ctx, "orders", batch); err != nil {
		fmt.Fprintln(w, "decrypt:", err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %v = %d", m.Name, p.Attributes.ToSlice(), p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %v: %d samples", m.Name, p.Attributes.ToSlice(), p.Count))
				}
			}
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	for _, s := range spans.Ended() {
		fmt.Fprintln(w, "span:", s.Name(), s.Attributes())
	}
	return nil
}
