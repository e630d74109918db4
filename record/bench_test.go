package record_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"testing"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/benchheap"
	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/record"
)

var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"1KiB", 1 << 10}, {"25KiB", 25 << 10}, {"1MiB", 1<<20 - 1024}}

// benchEncryptor returns an Encryptor with a warm key cache.
func benchEncryptor(b *testing.B) (*record.Encryptor, *record.Decryptor) {
	k := kmstest.New()
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
