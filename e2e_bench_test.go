package ksse_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/ksse-go/ksse"
	"github.com/ksse-go/ksse/internal/emulator"
)

// cpuTime returns the CPU time, user and system, that this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEndToEnd puts batches of 500 records of 1 KiB with PutRecords and
// reads them back with GetRecords, against kinesalite, through a plain
// client and through a client with ksse.WithEncryption (warm key cache).
// One op is one batch, put and read back. It reports records/s and
// cpu-µs/record, the CPU time of this process (user and system, from
// getrusage; the emulator is another process and is not counted) per
// record put and read. Run both in one invocation, with -count, so that
// they alternate:
//
//	go test -run '^$' -bench EndToEnd -count 6 .
func BenchmarkEndToEnd(b *testing.B) {
	srv, err := emulator.Kinesalite.Start(context.Background())
	if err != nil {
		b.Skipf("kinesalite unavailable (scripts/test installs it into .ci-cache/kinesalite): %v", err)
	}
	b.Cleanup(func() { srv.Close() })
	cfg := srv.AWSConfig()
	_, enc, dec := newKMSPair(b)
	for _, c := range []struct {
		name   string
		client *kinesis.Client
	}{
		{"plain", kinesis.NewFromConfig(cfg)},
		{"encrypted", kinesis.NewFromConfig(cfg, ksse.WithEncryption(enc, dec))},
	} {
		b.Run(c.name, func(b *testing.B) { benchEndToEnd(b, c.client, c.name == "encrypted") })
	}
}

func benchEndToEnd(b *testing.B, client *kinesis.Client, encrypted bool) {
	const n, size = 500, 1 << 10
	ctx := context.Background()
	stream := emulator.UniqueName("ksse-bench")
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: &stream, ShardCount: aws.Int32(1)}); err != nil {
		b.Fatal(err)
	}
	if err := kinesis.NewStreamExistsWaiter(client, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
	}).Wait(ctx, &kinesis.DescribeStreamInput{StreamName: &stream}, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: &stream,
		ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
	if err != nil {
		b.Fatal(err)
	}
	iter := it.ShardIterator
	in := &kinesis.PutRecordsInput{StreamName: &stream}
	for i := range n {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i + j)
		}
		in.Records = append(in.Records, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("user-%08d", i)), Data: data})
	}
	put := func() {
		out, err := client.PutRecords(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if f := aws.ToInt32(out.FailedRecordCount); f != 0 {
			b.Fatalf("%d records failed", f)
		}
	}
	read := func() {
		got := 0
		for got < n {
			out, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(n)})
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range out.Records {
				if len(r.Data) != size || string(r.Data[:1]) != string(in.Records[got].Data[:1]) ||
					aws.ToString(r.PartitionKey) != aws.ToString(in.Records[got].PartitionKey) ||
					(r.EncryptionType == types.EncryptionTypeKms) != encrypted {
					b.Fatalf("record %d read back wrong", got)
				}
				got++
			}
			iter = out.NextShardIterator
		}
		if got != n {
			b.Fatalf("read %d records, want %d", got, n)
		}
	}
	put() // warm: connections, key cache, iterator
	read()
	b.SetBytes(n * size)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for b.Loop() {
		put()
		read()
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "cpu-µs/record")
}
