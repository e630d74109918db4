// Package hashkey computes the Kinesis hash key of a partition key: the MD5
// digest of its UTF-8 bytes read as an unsigned 128-bit big-endian integer,
// in decimal, as Kinesis uses to map records to shards.
//
// MD5 serves here as the routing function Kinesis defines, not as a
// cryptographic hash. crypto/md5 (assembly, about a quarter faster) is
// unavailable with GODEBUG=fips140=only, so this package carries its own
// RFC 1321 implementation and uses it when the module enforces FIPS 140-3.
package hashkey

import (
	"crypto/fips140"
	"crypto/md5"
	"encoding/binary"
	"math/bits"
	"unsafe"
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

// appendUint128 appends hi·2⁶⁴+lo in decimal: up to three chunks of 19
// digits, two at a time.
func appendUint128(dst []byte, hi, lo uint64) []byte {
	const e19 = 10000000000000000000
	var digits [39]byte // 2¹²⁸-1 has 39 digits: q, then two chunks of 19
	// v = (q·10¹⁹ + r1)·10¹⁹ + r0, q < 4.
	qhi, r := bits.Div64(0, hi, e19)
	qlo, r0 := bits.Div64(r, lo, e19)
	q, r1 := bits.Div64(qhi, qlo, e19)
	digits[0] = byte('0' + q)
	put19(&digits, 19, r1)
	put19(&digits, 38, r0)
	i := 0
	for i < len(digits)-1 && digits[i] == '0' {
		i++
	}
	return append(dst, digits[i:]...)
}

// put19 writes r, less than 10¹⁹, as 19 digits with leading zeros, ending at
// digits[end].
func put19(digits *[39]byte, end int, r uint64) {
	i := end + 1
	for range 9 {
		d := r % 100 * 2
		r /= 100
		i -= 2
		digits[i], digits[i+1] = pairs[d], pairs[d+1]
	}
	digits[i-1] = byte('0' + r)
}

const pairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// enforced is fips140.Enforced(), fixed at start.
var enforced = fips140.Enforced()

// Sum returns the MD5 digest of s (RFC 1321).
func Sum(s string) [16]byte {
	if !enforced {
		// md5.Sum only reads its argument: no copy of s.
		return md5.Sum(unsafe.Slice(unsafe.StringData(s), len(s)))
	}
	return sum(s)
}

// sum is Sum without crypto/md5.
func sum(s string) [16]byte {
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
