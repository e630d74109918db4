package hashkey

import (
	"crypto/fips140"
	"crypto/md5"
	"encoding/hex"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// RFC 1321, appendix A.5.
var rfc1321 = []struct{ in, md5 string }{
	{"", "d41d8cd98f00b204e9800998ecf8427e"},
	{"a", "0cc175b9c0f1b6a831c399e269772661"},
	{"abc", "900150983cd24fb0d6963f7d28e17f72"},
	{"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
	{"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
	{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"},
	{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"},
}

func TestSumRFC1321(t *testing.T) {
	for _, v := range rfc1321 {
		d := Sum(v.in)
		require.Equal(t, v.md5, hex.EncodeToString(d[:]), "%q", v.in)
		d = sum(v.in)
		require.Equal(t, v.md5, hex.EncodeToString(d[:]), "own MD5 of %q", v.in)
	}
}

func TestOfMatchesBigInt(t *testing.T) {
	for n := range 200 {
		pk := strings.Repeat("ü", n%70) + strings.Repeat("x", n)
		d := Sum(pk)
		want := new(big.Int).SetBytes(d[:]).String()
		require.Equal(t, want, Of(pk), "%q", pk)
	}
}

func TestAppendUint128Edges(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	require.Equal(t, max.String(), string(appendUint128(nil, ^uint64(0), ^uint64(0))))
	require.Equal(t, "0", string(appendUint128(nil, 0, 0)))
	require.Equal(t, "10000000000000000000", string(appendUint128(nil, 0, 10000000000000000000)))
	require.Equal(t, "18446744073709551616", string(appendUint128(nil, 1, 0)))
	for _, v := range []struct{ hi, lo uint64 }{{0, 1}, {0, 9}, {0, 10}, {5, 0}, {1 << 63, 12345}, {0, 1<<64 - 1}} {
		want := new(big.Int).Add(new(big.Int).Lsh(new(big.Int).SetUint64(v.hi), 64), new(big.Int).SetUint64(v.lo))
		require.Equal(t, want.String(), string(appendUint128(nil, v.hi, v.lo)))
	}
}

func TestAppendUint128Random(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 20000 {
		hi, lo := r.Uint64(), r.Uint64()
		switch n % 4 { // small values too, of every length
		case 1:
			hi = 0
		case 2:
			hi, lo = 0, lo>>(n%64)
		case 3:
			hi >>= n % 64
		}
		want := new(big.Int).Add(new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64), new(big.Int).SetUint64(lo))
		require.Equal(t, want.String(), string(appendUint128(nil, hi, lo)), "%#x %#x", hi, lo)
	}
}

func TestOwnMD5MatchesCryptoMD5(t *testing.T) {
	if fips140.Enforced() {
		t.Skip("crypto/md5 is unavailable with GODEBUG=fips140=only; TestSumRFC1321 covers Sum there")
	}
	var b strings.Builder
	for n := range 300 { // every padding case, and multi-block inputs
		require.Equal(t, md5.Sum([]byte(b.String())), sum(b.String()), "%d bytes", n)
		b.WriteByte(byte(n*7 + 1))
	}
}
