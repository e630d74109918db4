package envelope_test

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/benchheap"
)

var benchSizes = []struct {
	name string
	n    int
}{{"100B", 100}, {"1KiB", 1 << 10}, {"25KiB", 25 << 10}, {"1MiB", 1 << 20}}

// benchPartitionKey is a typical partition key, included in Seal and Open.
var benchPartitionKey = []byte("user-00012345")

// BenchmarkGCMLimit is the physical limit: AES-256-GCM Seal of the payload
// with one fixed key and nonce, no key derivation, no framing.
func BenchmarkGCMLimit(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			block, _ := aes.NewCipher(make([]byte, 32))
			aead, _ := cipher.NewGCM(block)
			nonce := make([]byte, 12)
			payload := make([]byte, s.n)
			dst := make([]byte, 0, s.n+16)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				aead.Seal(dst[:0], nonce, payload, nil)
			}
		})
	}
}

// BenchmarkSeal seals into a buffer it reuses.
func BenchmarkSeal(b *testing.B) { benchSeal(b, false) }

// BenchmarkSealFresh is Seal into a new buffer: the least that an API
// returning a new envelope (record.Encryptor.Encrypt) costs.
func BenchmarkSealFresh(b *testing.B) { benchSeal(b, true) }

// BenchmarkOpen parses and opens into a buffer it reuses.
func BenchmarkOpen(b *testing.B) { benchOpen(b, false) }

// BenchmarkOpenFresh is Parse and Open into a new buffer: the least that an
// API returning a new plaintext (record.Decryptor.Decrypt) costs.
func BenchmarkOpenFresh(b *testing.B) { benchOpen(b, true) }

func benchSeal(b *testing.B, fresh bool) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			k := newTestKey(b, "kinesis:bench")
			payload := make([]byte, s.n)
			dst := make([]byte, 0, k.SealedSize(len(benchPartitionKey), s.n))
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if fresh {
					dst = nil
				}
				if _, err := k.Seal(dst[:0], benchPartitionKey, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchOpen(b *testing.B, fresh bool) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			benchheap.Hold(b)
			k := newTestKey(b, "kinesis:bench")
			env, err := k.Seal(nil, benchPartitionKey, make([]byte, s.n))
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, s.n+len(benchPartitionKey)+2)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if fresh {
					dst = make([]byte, 0, s.n+len(benchPartitionKey))
				}
				e, _, err := envelope.Parse(env)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := k.Open(dst[:0], &e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
