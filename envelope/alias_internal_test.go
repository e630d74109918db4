package envelope

import (
	"bytes"
	"crypto/cipher"
	"crypto/fips140"
	"fmt"
	"testing"
)

// aliasCheck is an AEAD that checks, before delegating, that its arguments
// keep the rules of crypto/cipher.AEAD: the additional data and the nonce
// share no memory with dst (its capacity included), and the input does not
// overlap the remaining capacity of dst.
type aliasCheck struct {
	cipher.AEAD
	calls      int
	violations []string
}

func (a *aliasCheck) check(op string, dst, nonce, in, ad []byte) {
	a.calls++
	whole := dst[:cap(dst)]
	if anyOverlap(whole, ad) {
		a.violations = append(a.violations, op+": additional data overlaps dst")
	}
	if anyOverlap(whole, nonce) {
		a.violations = append(a.violations, op+": nonce overlaps dst")
	}
	if anyOverlap(dst[len(dst):cap(dst)], in) {
		a.violations = append(a.violations, op+": input overlaps the capacity of dst")
	}
}

func (a *aliasCheck) Seal(dst, nonce, plaintext, ad []byte) []byte {
	a.check("Seal", dst, nonce, plaintext, ad)
	return a.AEAD.Seal(dst, nonce, plaintext, ad)
}

func (a *aliasCheck) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	a.check("Open", dst, nonce, ciphertext, ad)
	return a.AEAD.Open(dst, nonce, ciphertext, ad)
}

// TestAEADArgumentsDoNotAlias: Seal and Open give GCM additional data, a
// nonce and an input that do not overlap its output, as crypto/cipher
// requires, whatever the partition key size and wherever dst is.
func TestAEADArgumentsDoNotAlias(t *testing.T) {
	for _, fips := range []bool{false, true} {
		if !fips && fips140.Enforced() {
			continue // the hand-optimised path is not allowed there
		}
		k, err := newKey(bytes.Repeat([]byte{3}, KeySize), []byte("wrapped"), []byte("kinesis:a"), fips)
		if err != nil {
			t.Fatal(err)
		}
		a := &aliasCheck{}
		wrap := func(aead cipher.AEAD) cipher.AEAD {
			a.AEAD = aead
			return a
		}
		for _, pkLen := range []int{0, 1, 13, 300, MaxPartitionKeySize} {
			for _, size := range []int{0, 1, 1000} {
				pk := bytes.Repeat([]byte{'p'}, pkLen)
				payload := bytes.Repeat([]byte{'x'}, size)
				n := k.SealedSize(pkLen, size)
				for _, dst := range [][]byte{nil, make([]byte, 0, n), append(make([]byte, 0, 5+n), "head:"...)} {
					name := fmt.Sprintf("fips %v, pk %d, payload %d, dst %d/%d", fips, pkLen, size, len(dst), cap(dst))
					env, err := k.seal(dst, pk, payload, wrap)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					e, _, err := Parse(env[len(dst):])
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					out, m, err := k.open(make([]byte, 0, pkLen+size+64), &e, wrap)
					if err != nil || m != pkLen || !bytes.Equal(out[:m], pk) || !bytes.Equal(out[m:], payload) {
						t.Fatalf("%s: open: %v", name, err)
					}
					for _, v := range a.violations {
						t.Errorf("%s: %s", name, v)
					}
					a.violations = nil
				}
			}
		}
		if a.calls == 0 {
			t.Fatalf("fips %v: the AEAD was never called through the seam", fips)
		}
	}
}
