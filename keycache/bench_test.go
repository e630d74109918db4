package keycache_test

import (
	"context"
	"slices"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/benchheap"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
)

// BenchmarkRotation seals 1 KiB records steadily across many TTL boundaries
// with a KMS that takes 50 ms per call, and reports the per-record latency
// (key lookup and seal) at p50, p99.9 and max. With refresh-ahead no record
// should wait on KMS once the cache is warm: max well below the KMS latency.
//
// The TTL is shortened to 200 ms (refresh 100 ms ahead) so that a run of
// about a second crosses several boundaries.
func BenchmarkRotation(b *testing.B) {
	benchheap.Hold(b)
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	k.SetLatency(50 * time.Millisecond)
	p := newProducer(b, k, func(o *keycache.ProducerOptions) {
		o.TTL = 200 * time.Millisecond
		o.RefreshAhead = 100 * time.Millisecond
	})
	defer p.Close()
	ctx := context.Background()
	bind := keycache.Binding{Context: map[string]string{"kinesis:stream": "bench"}, AD: "kinesis:bench"}
	if _, err := p.Key(ctx, arn, bind, 0); err != nil { // warm up: the one wait on KMS
		b.Fatal(err)
	}
	payload := make([]byte, 1024)
	dst := make([]byte, 0, 2048)
	// Latencies go into fixed-size chunks: growing one slice by append
	// would copy tens of MiB inside the timed loop (and make the allocating
	// record pay GC assist for it), which shows up as a false max.
	const chunkLen = 1 << 16
	chunks := []*[chunkLen]time.Duration{new([chunkLen]time.Duration)}
	n := 0
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		key, err := p.Key(ctx, arn, bind, len(payload))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := key.Seal(dst[:0], []byte("user-00012345"), payload); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		if n == chunkLen {
			b.StopTimer()
			chunks = append(chunks, new([chunkLen]time.Duration))
			n = 0
			b.StartTimer()
		}
		chunks[len(chunks)-1][n] = d
		n++
	}
	b.StopTimer()
	elapsed := time.Since(start)
	lat := make([]time.Duration, 0, (len(chunks)-1)*chunkLen+n)
	for i, c := range chunks {
		if i == len(chunks)-1 {
			lat = append(lat, c[:n]...)
		} else {
			lat = append(lat, c[:]...)
		}
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(q(0.5), "p50-ns")
	b.ReportMetric(q(0.999), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
	b.ReportMetric(float64(elapsed)/float64(200*time.Millisecond), "ttls")
	b.ReportMetric(float64(k.Calls("GenerateDataKey")), "kms-calls")
}
