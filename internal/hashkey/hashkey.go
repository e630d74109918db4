// Package hashkey computes the Kinesis hash key of a partition key: the MD5
// digest of its UTF-8 bytes read as an unsigned 128-bit big-endian integer,
// in decimal, as Kinesis uses to map records to shards.
//
// MD5 serves here as the routing function Kinesis defines, not as a
// cryptographic hash, and crypto/md5 is unavailable with
// GODEBUG=fips140=only, so this package carries its own RFC 1321
// implementation.
package hashkey

import (
	"encoding/binary"
	"math/bits"
)

// Of returns the decimal hash key of partitionKey.
func Of(partitionKey string) string {
	var buf [39]byte
	return string(Append(buf[:0], partitionKey))
}

// Append appends the decimal hash key of partitionKey to dst.
func Append(dst []byte, partitionKey string) []byte {
	d := Sum(partitionKey)
	hi, lo := binary.BigEndian.Uint64(d[:8]), binary.BigEndian.Uint64(d[8:])
	return appendUint128(dst, hi, lo)
}

// AppendDigest appends the first 16 bytes of digest, read as an unsigned
// 128-bit big-endian integer, in decimal: the hash key of a record routed
// by another function than MD5.
func AppendDigest(dst, digest []byte) []byte {
	_ = digest[15]
	return appendUint128(dst, binary.BigEndian.Uint64(digest[:8]), binary.BigEndian.Uint64(digest[8:16]))
}

// appendUint128 appends hi·2⁶⁴+lo in decimal.
func appendUint128(dst []byte, hi, lo uint64) []byte {
	var digits [39]byte // 2¹²⁸-1 has 39 digits
	i := len(digits)
	for hi != 0 || lo != 0 || i == len(digits) {
		// Divide by 10¹⁹ and print the remainder's 19 digits.
		const e19 = 10000000000000000000
		var r uint64
		hi, r = bits.Div64(0, hi, e19)
		lo, r = bits.Div64(r, lo, e19)
		for j := 0; j < 19 && i > 0; j++ {
			i--
			digits[i] = byte('0' + r%10)
			r /= 10
			if hi == 0 && lo == 0 && r == 0 {
				break
			}
		}
	}
	return append(dst, digits[i:]...)
}

// Sum returns the MD5 digest of s (RFC 1321).
func Sum(s string) [16]byte {
	a, b, c, d := uint32(0x67452301), uint32(0xefcdab89), uint32(0x98badcfe), uint32(0x10325476)
	n := len(s)
	var block [64]byte
	for len(s) >= 64 {
		copy(block[:], s)
		a, b, c, d = compress(a, b, c, d, &block)
		s = s[64:]
	}
	// Padding: 0x80, zeros, and the length in bits, little-endian.
	clear(block[:])
	copy(block[:], s)
	block[len(s)] = 0x80
	if len(s) >= 56 {
		a, b, c, d = compress(a, b, c, d, &block)
		clear(block[:])
	}
	binary.LittleEndian.PutUint64(block[56:], uint64(n)<<3)
	a, b, c, d = compress(a, b, c, d, &block)
	var out [16]byte
	binary.LittleEndian.PutUint32(out[0:], a)
	binary.LittleEndian.PutUint32(out[4:], b)
	binary.LittleEndian.PutUint32(out[8:], c)
	binary.LittleEndian.PutUint32(out[12:], d)
	return out
}
