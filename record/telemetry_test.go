package record_test

import (
	"context"
	"crypto/fips140"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go/metrics"
	"github.com/aws/smithy-go/tracing"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

// fakeMeter records every measurement as "name{k=v,…}" → sum.
type fakeMeter struct {
	metrics.NopMeter
	mu    sync.Mutex
	sums  map[string]float64
	async []func()
}

func (m *fakeMeter) Meter(string, ...metrics.MeterOption) metrics.Meter { return m }

func (m *fakeMeter) add(name string, v float64, opts []metrics.RecordMetricOption) {
	var o metrics.RecordMetricOptions
	for _, fn := range opts {
		fn(&o)
	}
	var kv []string
	for k, v := range o.Properties.Values() {
		kv = append(kv, fmt.Sprintf("%v=%v", k, v))
	}
	sort.Strings(kv)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sums == nil {
		m.sums = map[string]float64{}
	}
	m.sums[name+"{"+strings.Join(kv, ",")+"}"] += v
}

type fakeCounter struct {
	m    *fakeMeter
	name string
}

func (c fakeCounter) Add(_ context.Context, v int64, o ...metrics.RecordMetricOption) {
	c.m.add(c.name, float64(v), o)
}
func (c fakeCounter) Record(_ context.Context, v float64, o ...metrics.RecordMetricOption) {
	c.m.add(c.name, 1, o) // count the samples
}
func (c fakeCounter) Observe(_ context.Context, v int64, o ...metrics.RecordMetricOption) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	var ro metrics.RecordMetricOptions
	for _, fn := range o {
		fn(&ro)
	}
	c.m.sums[fmt.Sprintf("%s{ksse.side=%v}", c.name, ro.Properties.Get("ksse.side"))] = float64(v)
}
func (fakeCounter) Stop() {}

func (m *fakeMeter) Int64Counter(name string, _ ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return fakeCounter{m, name}, nil
}
func (m *fakeMeter) Float64Histogram(name string, _ ...metrics.InstrumentOption) (metrics.Float64Histogram, error) {
	return fakeCounter{m, name}, nil
}
func (m *fakeMeter) Int64AsyncCounter(name string, cb metrics.Int64Callback, _ ...metrics.InstrumentOption) (metrics.AsyncInstrument, error) {
	m.async = append(m.async, func() { cb(context.Background(), fakeCounter{m, name}) })
	return fakeCounter{m, name}, nil
}

// collect runs the asynchronous instruments and returns the sums.
func (m *fakeMeter) collect() map[string]float64 {
	for _, fn := range m.async {
		fn()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]float64{}
	for k, v := range m.sums {
		out[k] = v
	}
	return out
}

// TestMetrics: with a MeterProvider, the Encryptor and Decryptor count
// records by outcome, cache lookups and KMS calls by result, with no key
// material and no content in any attribute.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	em, dm := &fakeMeter{}, &fakeMeter{}
	enc, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) { o.MeterProvider = em })
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{arn}
		o.MeterProvider = dm
		o.TracerProvider = tracing.NopTracerProvider{}
	})
	require.NoError(t, err)
	defer dec.Close()

	var data [][]byte
	for i := range 3 {
		r, err := enc.Encrypt(ctx, "orders", "secret-pk", fmt.Appendf(nil, "secret-payload-%d", i))
		require.NoError(t, err)
		data = append(data, r.Data)
	}
	tampered := append([]byte(nil), data[2]...)
	tampered[30] ^= 1
	_, err = dec.DecryptBatch(ctx, "orders", [][]byte{data[0], data[1], tampered, []byte("plaintext")})
	require.Error(t, err)
	fresh := producers(t, k, arn, "orders", 1, 1)[0]
	k.InjectFault("Decrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
	_, err = dec.Decrypt(ctx, "orders", fresh)
	require.Error(t, err)

	require.Equal(t, map[string]float64{
		"ksse.records.encrypted{ksse.stream=kinesis:orders}":           3,
		"ksse.kms.calls{kms.operation=GenerateDataKey,ksse.result=ok}": 1,
		"ksse.kms.duration{kms.operation=GenerateDataKey}":             1,
		"ksse.cache.hits{ksse.side=producer}":                          2,
		"ksse.cache.misses{ksse.side=producer}":                        1,
	}, em.collect())
	require.Equal(t, map[string]float64{
		"ksse.records.decrypted{ksse.stream=kinesis:orders}":                          2,
		"ksse.records.rejected{ksse.reason=not_authentic,ksse.stream=kinesis:orders}": 1,
		"ksse.records.rejected{ksse.reason=not_encrypted,ksse.stream=kinesis:orders}": 1,
		"ksse.records.failed{ksse.stream=kinesis:orders}":                             1,
		"ksse.kms.calls{kms.operation=Decrypt,ksse.result=ok}":                        1,
		"ksse.kms.calls{kms.operation=Decrypt,ksse.result=KMSThrottling}":             1,
		"ksse.kms.duration{kms.operation=Decrypt}":                                    2,
		"ksse.cache.hits{ksse.side=consumer}":                                         0, // one data key, first seen in the batch
		"ksse.cache.misses{ksse.side=consumer}":                                       2,
	}, dm.collect())
}

type panicky struct{ metrics.NopMeterProvider }

func (panicky) Meter(string, ...metrics.MeterOption) metrics.Meter { panic("boom") }

type failing struct{ metrics.NopMeter }

func (f failing) Meter(string, ...metrics.MeterOption) metrics.Meter { return f }
func (failing) Int64Counter(string, ...metrics.InstrumentOption) (metrics.Int64Counter, error) {
	return nil, fmt.Errorf("no counters here")
}

// TestMetricsBadProvider: a provider that panics or fails is an error at
// construction.
func TestMetricsBadProvider(t *testing.T) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	for _, mp := range []metrics.MeterProvider{panicky{}, failing{}} {
		_, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) { o.MeterProvider = mp })
		require.ErrorIs(t, err, record.ErrInvalidInput)
		_, err = record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn}; o.MeterProvider = mp })
		require.ErrorIs(t, err, record.ErrInvalidInput)
		require.ErrorContains(t, err, "MeterProvider")
	}
}

// BenchmarkEncryptMetrics is Encrypt of 100 bytes without providers (the
// default, which must not allocate more than before) and with no-op ones.
func BenchmarkEncryptMetrics(b *testing.B) {
	for _, mode := range []string{"none", "nop"} {
		b.Run(mode, func(b *testing.B) {
			k := kmsfake.New()
			_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
			enc, err := record.NewEncryptor(k, arn, func(o *record.EncryptorOptions) {
				if mode == "nop" {
					o.MeterProvider = metrics.NopMeterProvider{}
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

// TestAllocationsWithoutTelemetry: without providers, Encrypt and Decrypt
// allocate what they did before metrics existed: 4 and 3 times, the
// returned buffers included.
func TestAllocationsWithoutTelemetry(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	if fips140.Enabled() {
		t.Skip("FIPS 140-3 mode derives keys with crypto/hkdf, which allocates")
	}
	ctx := context.Background()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	defer dec.Close()
	payload := make([]byte, 100)
	r, err := enc.Encrypt(ctx, "orders", "user-1", payload)
	require.NoError(t, err)
	_, err = dec.Decrypt(ctx, "orders", r.Data)
	require.NoError(t, err)
	encAllocs := testing.AllocsPerRun(100, func() { _, _ = enc.Encrypt(ctx, "orders", "user-1", payload) })
	decAllocs := testing.AllocsPerRun(100, func() { _, _ = dec.Decrypt(ctx, "orders", r.Data) })
	t.Logf("allocations: Encrypt %.0f, Decrypt %.0f", encAllocs, decAllocs)
	require.LessOrEqual(t, encAllocs, 4.0)
	require.LessOrEqual(t, decAllocs, 3.0)
}
