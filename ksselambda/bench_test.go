package ksselambda_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/benchheap"
	"github.com/ksse-go/ksse/ksselambda"
)

// BenchmarkEvent is ksselambda.Handler on a synthetic event of 10,000
// records of 1 KiB from 10,000 partition keys under one data key, with a
// warm cache, beside record.Decryptor.DecryptBatch of the same records
// (what the handler adds is the difference) and the floor: envelope.Parse
// and Key.Open of as many records of the same sizes into a reused buffer. One op is one event;
// ns/record is per record.
//
//	go test -run '^$' -bench Event -benchmem -count 6 ./ksselambda
func BenchmarkEvent(b *testing.B) {
	const n, size = 10000, 1 << 10
	payload := make([]byte, size)
	pk := func(i int) string { return fmt.Sprintf("user-%08d", i) }

	b.Run("Handler", func(b *testing.B) {
		benchheap.Hold(b)
		f := newFixture(b)
		ev := events.KinesisEvent{Records: make([]events.KinesisEventRecord, n)}
		for i := range ev.Records {
			ev.Records[i] = f.rec(b, shard0, i, pk(i), string(payload))
		}
		got := 0
		h := ksselambda.Handler(f.dec, func(_ context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
			got = len(ev.Records)
			return events.KinesisEventResponse{}, nil
		})
		ctx := context.Background()
		if _, err := h(ctx, ev); err != nil || got != n { // warm
			b.Fatalf("%d records, %v", got, err)
		}
		b.SetBytes(n * size)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := h(ctx, ev)
			if err != nil || len(resp.BatchItemFailures) != 0 || got != n {
				b.Fatalf("%d records, %d failures, %v", got, len(resp.BatchItemFailures), err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})

	b.Run("DecryptBatch", func(b *testing.B) {
		benchheap.Hold(b)
		f := newFixture(b)
		data := make([][]byte, n)
		for i := range data {
			data[i] = f.rec(b, shard0, i, pk(i), string(payload)).Kinesis.Data
		}
		ctx := context.Background()
		if _, err := f.dec.DecryptBatch(ctx, streamARN, data); err != nil { // warm
			b.Fatal(err)
		}
		b.SetBytes(n * size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.dec.DecryptBatch(ctx, streamARN, data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})

	b.Run("Open", func(b *testing.B) {
		benchheap.Hold(b)
		dk, wk := make([]byte, envelope.KeySize), make([]byte, 184)
		rand.Read(dk)
		rand.Read(wk)
		k, err := envelope.NewKey(dk, wk, []byte("kinesis:"+streamARN))
		if err != nil {
			b.Fatal(err)
		}
		sealed := make([][]byte, n)
		for i := range sealed {
			if sealed[i], err = k.Seal(nil, []byte(pk(i)), payload); err != nil {
				b.Fatal(err)
			}
		}
		buf := make([]byte, 0, 2*size)
		b.SetBytes(n * size)
		b.ReportAllocs()
		for b.Loop() {
			for _, s := range sealed {
				e, _, err := envelope.Parse(s)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := k.Open(buf[:0], &e); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
	})
}
