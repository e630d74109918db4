package envelope

import (
	"crypto/aes"
	"crypto/sha256"
)

// This file exposes the hand-optimised primitives of key.go to the tests of
// package envelope_test (wycheproof_test.go), and nothing else.

// ExpandRecordKey returns HKDF-Expand(prk, "ksse v1 record key" || salt, n)
// as Key.expand computes it for Seal and Open: from the two HMAC-SHA256
// states that NewKey precomputes (hmacState), resumed for every block. prk
// plays the stream key. n must be at most 255 blocks (8160 bytes); Seal and
// Open only ever ask for 32.
func ExpandRecordKey(prk, salt []byte, n int) ([]byte, error) {
	return expandWith(prk, labelRecordKey, salt, n)
}

// ExpandInfo is ExpandRecordKey with an arbitrary info in place of
// "ksse v1 record key" || salt: it passes Key.expand an empty label and info
// as the salt, so that any HKDF-Expand test vector runs through the same
// code. It is safe to call in parallel with Seal and Open.
func ExpandInfo(prk, info []byte, n int) ([]byte, error) {
	return expandWith(prk, "", info, n)
}

func expandWith(prk []byte, label string, salt []byte, n int) ([]byte, error) {
	k := &Key{}
	k.m.Store(&material{
		inner: appendHMACState(make([]byte, 0, hmacStateSize), prk, 0x36),
		outer: appendHMACState(make([]byte, 0, hmacStateSize), prk, 0x5c),
	})
	s := &scratch{inner: sha256.New(), outer: sha256.New()}
	okm, err := k.expand(s, label, salt, nil, n)
	if err != nil {
		return nil, err
	}
	return okm[:n], nil
}

// XORPartitionKeyStream XORs buf with the partition key stream (FORMAT.md:
// AES-CTR from FF×12 || 0) of the AES-256 key key, as Seal and Open do,
// block by block or, with fips, with cipher.NewCTR.
func XORPartitionKeyStream(key, buf []byte, fips bool) {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	xorPartitionKeyStream(&scratch{}, b, buf, fips)
}

// NewKeyMode is NewKey in FIPS mode (fips) or not, whatever GODEBUG says.
func NewKeyMode(dataKey, wrappedKey, ad []byte, fips bool) (*Key, error) {
	return newKey(dataKey, wrappedKey, ad, fips)
}

// FIPSMode reports whether k was made in FIPS mode.
func (k *Key) FIPSMode() bool { return k.fips }
