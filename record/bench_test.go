package record_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/benchheap"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"1KiB", 1 << 10}, {"25KiB", 25 << 10}, {"1MiB", 1<<20 - 1024}}

// benchEncryptor returns an Encryptor with a warm key cache.
func benchEncryptor(b *testing.B) (*record.Encryptor, *record.Decryptor) {
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { enc.Close(); dec.Close() })
	if _, err := enc.Encrypt(context.Background(), "bench", "warm", nil); err != nil {
		b.Fatal(err)
	}
	return enc, dec
}

// BenchmarkEncrypt is Encryptor.Encrypt of one record with a warm cache.
// The 1MiB case is 1 MiB less 1 KiB, to fit the default record limit.
func BenchmarkEncrypt(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			enc, _ := benchEncryptor(b)
			ctx := context.Background()
			payload := make([]byte, s.n)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.Encrypt(ctx, "bench", "user-00012345", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecrypt is Decryptor.Decrypt of one record with a warm cache.
func BenchmarkDecrypt(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			enc, dec := benchEncryptor(b)
			ctx := context.Background()
			r, err := enc.Encrypt(ctx, "bench", "user-00012345", make([]byte, s.n))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := dec.Decrypt(ctx, "bench", r.Data); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dec.Decrypt(ctx, "bench", r.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncryptParallel is Encrypt of 1 KiB records from all
// GOMAXPROCS goroutines sharing one Encryptor: run with -cpu 1,2 to see the
// hit path scale.
func BenchmarkEncryptParallel(b *testing.B) {
	benchheap.Hold(b)
	enc, _ := benchEncryptor(b)
	ctx := context.Background()
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		payload := make([]byte, 1<<10)
		for pb.Next() {
			if _, err := enc.Encrypt(ctx, "bench", "user-00012345", payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGCMLimitParallel is the machine's own scaling ceiling for
// BenchmarkEncryptParallel: raw AES-256-GCM Seal of 1 KiB with one fixed key
// per goroutine, from all GOMAXPROCS goroutines, nothing allocated.
func BenchmarkGCMLimitParallel(b *testing.B) {
	benchheap.Hold(b)
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		block, _ := aes.NewCipher(make([]byte, 32))
		aead, _ := cipher.NewGCM(block)
		nonce := make([]byte, aead.NonceSize())
		payload := make([]byte, 1<<10)
		dst := make([]byte, 0, len(payload)+aead.Overhead())
		for pb.Next() {
			aead.Seal(dst[:0], nonce, payload, nil)
		}
	})
}

// BenchmarkGCMRekeyParallel is BenchmarkGCMLimitParallel with a new
// AES-256-GCM instance per record, as a per-record key requires: the two
// allocations of aes.NewCipher and cipher.NewGCM that Seal cannot avoid,
// and the garbage collection they cause.
func BenchmarkGCMRekeyParallel(b *testing.B) {
	benchheap.Hold(b)
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		key := make([]byte, 32)
		nonce := make([]byte, 12)
		payload := make([]byte, 1<<10)
		dst := make([]byte, 0, len(payload)+16)
		for pb.Next() {
			block, _ := aes.NewCipher(key)
			aead, _ := cipher.NewGCM(block)
			aead.Seal(dst[:0], nonce, payload, nil)
		}
	})
}

// BenchmarkEncryptAppend is Encryptor.EncryptAppend of one record into a
// reused buffer: Encrypt without the returned buffer's allocation.
func BenchmarkEncryptAppend(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			enc, _ := benchEncryptor(b)
			ctx := context.Background()
			payload := make([]byte, s.n)
			buf := make([]byte, 0, s.n+4096)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := enc.EncryptAppend(ctx, buf[:0], "bench", "user-00012345", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecryptAppend is Decryptor.DecryptAppend of one record into a
// reused buffer.
func BenchmarkDecryptAppend(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			enc, dec := benchEncryptor(b)
			ctx := context.Background()
			r, err := enc.Encrypt(ctx, "bench", "user-00012345", make([]byte, s.n))
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 0, len(r.Data))
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := dec.DecryptAppend(ctx, buf[:0], "bench", r.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// nopPutRecords answers PutRecords as Kinesis does when every record is
// accepted, with one result slice reused.
type nopPutRecords struct{ out kinesis.PutRecordsOutput }

func (c *nopPutRecords) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	if len(c.out.Records) != len(in.Records) {
		c.out.Records = make([]kinesistypes.PutRecordsResultEntry, len(in.Records))
		for i := range c.out.Records {
			c.out.Records[i].SequenceNumber = aws.String("1")
			c.out.Records[i].ShardId = aws.String("shardId-000000000000")
		}
	}
	return &c.out, nil
}

// BenchmarkPutRecordsBatch is Encryptor.PutRecords of 500 records of 1 KiB
// to a client that accepts them without sending: ns/op and allocs/op are
// per batch; ns/record is per record.
func BenchmarkPutRecordsBatch(b *testing.B) {
	benchheap.Hold(b)
	enc, _ := benchEncryptor(b)
	ctx := context.Background()
	const n = 500
	in := &kinesis.PutRecordsInput{StreamName: aws.String("bench")}
	for i := range n {
		in.Records = append(in.Records, kinesistypes.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprintf("user-%08d", i)), Data: make([]byte, 1<<10)})
	}
	client := &nopPutRecords{}
	b.SetBytes(n << 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := enc.PutRecords(ctx, client, in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkDecryptRecordsBatch is Decryptor.DecryptRecords of a GetRecords
// output of 500 records of 1 KiB under one data key (warm cache).
func BenchmarkDecryptRecordsBatch(b *testing.B) {
	benchheap.Hold(b)
	enc, dec := benchEncryptor(b)
	ctx := context.Background()
	const n = 500
	sealed := make([][]byte, n)
	for i := range sealed {
		r, err := enc.Encrypt(ctx, "bench", fmt.Sprintf("user-%08d", i), make([]byte, 1<<10))
		if err != nil {
			b.Fatal(err)
		}
		sealed[i] = r.Data
	}
	records := make([]kinesistypes.Record, n)
	outbound := aws.String(record.OutboundPartitionKey)
	b.SetBytes(n << 10)
	b.ReportAllocs()
	for b.Loop() {
		for i := range records {
			records[i] = kinesistypes.Record{Data: sealed[i], PartitionKey: outbound}
		}
		if err := dec.DecryptRecords(ctx, "bench", records); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkDecryptParallel is Decrypt of 1 KiB records from all GOMAXPROCS
// goroutines sharing one Decryptor: run with -cpu 1,2.
func BenchmarkDecryptParallel(b *testing.B) {
	benchheap.Hold(b)
	enc, dec := benchEncryptor(b)
	ctx := context.Background()
	r, err := enc.Encrypt(ctx, "bench", "user-00012345", make([]byte, 1<<10))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := dec.Decrypt(ctx, "bench", r.Data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := dec.Decrypt(ctx, "bench", r.Data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
