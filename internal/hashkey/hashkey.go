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

var shifts = [64]int{
	7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
	5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
	4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
	6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
}

// table[i] = floor(2³² · |sin(i+1)|).
var table = [64]uint32{
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
}

func compress(a0, b0, c0, d0 uint32, block *[64]byte) (uint32, uint32, uint32, uint32) {
	var m [16]uint32
	for i := range m {
		m[i] = binary.LittleEndian.Uint32(block[4*i:])
	}
	a, b, c, d := a0, b0, c0, d0
	for i := range 64 {
		var f uint32
		var g int
		switch i / 16 {
		case 0:
			f, g = (b&c)|(^b&d), i
		case 1:
			f, g = (d&b)|(^d&c), (5*i+1)%16
		case 2:
			f, g = b^c^d, (3*i+5)%16
		default:
			f, g = c^(b|^d), (7*i)%16
		}
		f += a + table[i] + m[g]
		a, d, c = d, c, b
		b += bits.RotateLeft32(f, shifts[i])
	}
	return a0 + a, b0 + b, c0 + c, d0 + d
}
