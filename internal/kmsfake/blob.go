package kmsfake

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"maps"
	"slices"
)

// The ciphertext blob format:
//
//	blob = version || key ID || nonce || ciphertext || tag
//
// version is one byte, blobVersion. key ID is the 36-byte ASCII UUID of the
// key, so that Decrypt finds the key without being told. nonce (12 bytes,
// random), ciphertext and tag (16 bytes) are the output of AES-256-GCM
// (cipher.NewGCMWithRandomNonce) under the key's secret, with the additional
// data
//
//	ad = blobLabel || version || key ID || encoded encryption context
//
// where the encryption context is encoded as its number of pairs, then each
// pair sorted by key as key length || key || value length || value, every
// number a big-endian uint32. The encoding is injective: no two encryption
// contexts share it, whatever bytes their keys and values hold.
const (
	blobVersion   = 1
	blobLabel     = "kmstest ciphertext blob v1\x00"
	keyIDSize     = 36
	blobHeaderLen = 1 + keyIDSize
	gcmOverhead   = 12 + 16
	blobOverhead  = blobHeaderLen + gcmOverhead
	maxBlobSize   = 6144 // the largest CiphertextBlob KMS accepts
)

// seal encrypts plaintext under aead for the key keyID.
func seal(aead cipher.AEAD, keyID string, plaintext []byte, ec map[string]string) []byte {
	blob := make([]byte, 0, blobOverhead+len(plaintext))
	blob = append(blob, blobVersion)
	blob = append(blob, keyID...)
	return aead.Seal(blob, nil, plaintext, additionalData(blob, ec))
}

// blobKeyID returns the key ID in the header of blob, if blob can be a
// ciphertext blob.
func blobKeyID(blob []byte) (string, bool) {
	if len(blob) < blobOverhead || blob[0] != blobVersion {
		return "", false
	}
	id := blob[1:blobHeaderLen]
	if mrk, ok := bytes.CutPrefix(id, []byte("mrk-")); ok {
		// A multi-Region key ID: "mrk-" and 32 hex digits, as long as a UUID.
		for _, c := range mrk {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return "", false
			}
		}
		return string(id), true
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		default:
			return "", false
		}
	}
	return string(id), true
}

// open decrypts blob, whose header blobKeyID accepted, under aead.
func open(aead cipher.AEAD, blob []byte, ec map[string]string) ([]byte, bool) {
	pt, err := aead.Open(nil, nil, blob[blobHeaderLen:], additionalData(blob[:blobHeaderLen], ec))
	return pt, err == nil
}

func additionalData(header []byte, ec map[string]string) []byte {
	ad := make([]byte, 0, 128)
	ad = append(ad, blobLabel...)
	ad = append(ad, header...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(ec)))
	for _, k := range slices.Sorted(maps.Keys(ec)) {
		ad = appendString(ad, k)
		ad = appendString(ad, ec[k])
	}
	return ad
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
