package envelope_test

import (
	"bytes"
	"crypto/fips140"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"testing/cryptotest"

	"github.com/ksse-go/ksse/envelope"
)

// TestSealDrawsRandomnessAtUse: Seal draws the salt and the nonce of a record
// from crypto/rand during the call, not from random bytes drawn before. A
// stock drawn ahead would be duplicated by a fork or a VM snapshot, and
// both copies would seal with the same salts and nonces under a cached data
// key. Here crypto/rand is replaced by a seeded stream between records, as
// a restored snapshot's kernel reseeds it: every Seal after the switch must
// use the new stream, from its start.
func TestSealDrawsRandomnessAtUse(t *testing.T) {
	for _, fips := range []bool{false, true} {
		if !fips && fips140.Enforced() {
			continue // the hand-optimised path is not allowed there
		}
		k, err := envelope.NewKeyMode(bytes.Repeat([]byte{5}, envelope.KeySize), []byte("wrapped"), []byte("kinesis:a"), fips)
		if err != nil {
			t.Fatal(err)
		}
		// saltNonce seals one record and returns its salt and nonce.
		saltNonce := func() []byte {
			env, err := k.Seal(nil, []byte("pk"), []byte("payload"))
			if err != nil {
				t.Fatal(err)
			}
			e, _, err := envelope.Parse(env)
			if err != nil {
				t.Fatal(err)
			}
			return append(bytes.Clone(e.Salt), e.Body[2+len("pk"):2+len("pk")+envelope.NonceSize]...)
		}
		for seed := range uint64(5) {
			saltNonce() // with the system's crypto/rand, as a snapshot is taken
			cryptotest.SetGlobalRandom(t, seed)
			got := saltNonce()
			cryptotest.SetGlobalRandom(t, seed)
			again := saltNonce()
			if !bytes.Equal(got, again) {
				t.Fatalf("fips %v, seed %d: the same random stream gave salt and nonce %x, then %x", fips, seed, got, again)
			}
			// SetGlobalRandom's stream: ChaCha8 keyed with the seed. The
			// salt is drawn first, then the nonce.
			var key [32]byte
			binary.LittleEndian.PutUint64(key[:8], seed)
			want := make([]byte, envelope.SaltSize+envelope.NonceSize)
			rand.NewChaCha8(key).Read(want)
			if !bytes.Equal(got, want) {
				t.Fatalf("fips %v, seed %d: salt and nonce %x, not the first bytes of crypto/rand %x", fips, seed, got, want)
			}
		}
	}
}
