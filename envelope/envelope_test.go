package envelope_test

import (
	"bytes"
	"crypto/fips140"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/ksse-go/ksse/envelope"
	"github.com/stretchr/testify/require"
)

func newTestKey(t testing.TB, ad string) *envelope.Key {
	t.Helper()
	dk := bytes.Repeat([]byte{0x42}, envelope.KeySize)
	k, err := envelope.NewKey(dk, []byte("wrapped-key-blob"), []byte(ad))
	require.NoError(t, err)
	return k
}

func TestRoundTrip(t *testing.T) {
	k := newTestKey(t, "kinesis:orders")
	for _, tc := range []struct{ pk, payload []byte }{
		{nil, nil},
		{[]byte("p"), nil},
		{nil, []byte("x")},
		{[]byte("user-1234"), []byte(`{"order":42}`)},
		{bytes.Repeat([]byte("k"), envelope.MaxPartitionKeySize), make([]byte, 1<<20)},
	} {
		env, err := k.Seal(nil, tc.pk, tc.payload)
		require.NoError(t, err)
		require.Len(t, env, k.SealedSize(len(tc.pk), len(tc.payload)))
		require.True(t, envelope.IsEnvelope(env))
		require.False(t, bytes.Contains(env, []byte("user-1234")))

		e, rest, err := envelope.Parse(env)
		require.NoError(t, err)
		require.Empty(t, rest)
		require.Equal(t, []byte("wrapped-key-blob"), e.WrappedKey)
		re, err := e.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, env, re, "parse→marshal must be canonical")

		prefix := []byte("prefix")
		out, n, err := k.Open(prefix, &e)
		require.NoError(t, err)
		require.Equal(t, "prefix", string(out[:6]))
		require.Equal(t, string(tc.pk), string(out[6:6+n]))
		require.True(t, bytes.Equal(tc.payload, out[6+n:]))

		// A copy of the envelope whose fields are not contiguous opens too.
		e2 := envelope.Envelope{
			Salt:       bytes.Clone(e.Salt),
			Body:       bytes.Clone(e.Body),
			WrappedKey: bytes.Clone(e.WrappedKey),
		}
		out2, n2, err := k.Open(nil, &e2)
		require.NoError(t, err)
		require.Equal(t, n, n2)
		require.True(t, bytes.Equal(out[6:], out2))
	}
}

func TestOverheadIsExactly56(t *testing.T) {
	require.Equal(t, 56, envelope.Overhead)
	k := newTestKey(t, "s")
	env, err := k.Seal(nil, []byte("pk"), []byte("payload"))
	require.NoError(t, err)
	require.Equal(t, 56+len("pk")+len("payload")+len("wrapped-key-blob"), len(env))
}

func TestWrongStreamOrKeyFails(t *testing.T) {
	k := newTestKey(t, "kinesis:a")
	env, err := k.Seal(nil, []byte("pk"), []byte("payload"))
	require.NoError(t, err)
	e, _, err := envelope.Parse(env)
	require.NoError(t, err)

	other := newTestKey(t, "kinesis:b")
	out, _, err := other.Open([]byte("dst"), &e)
	require.ErrorIs(t, err, envelope.ErrOpen)
	require.Equal(t, "dst", string(out))

	dk := make([]byte, envelope.KeySize)
	rand.Read(dk)
	k3, err := envelope.NewKey(dk, []byte("wrapped-key-blob"), []byte("kinesis:a"))
	require.NoError(t, err)
	_, _, err = k3.Open(nil, &e)
	require.ErrorIs(t, err, envelope.ErrOpen)

	// Same data key, another wrapped key: the wrapped key is bound.
	k4, err := envelope.NewKey(bytes.Repeat([]byte{0x42}, 32), []byte("wrapped-key-blob2"), []byte("kinesis:a"))
	require.NoError(t, err)
	_, _, err = k4.Open(nil, &e)
	require.ErrorIs(t, err, envelope.ErrOpen)
}

func TestTamperEveryBit(t *testing.T) {
	k := newTestKey(t, "kinesis:a")
	env, err := k.Seal(nil, []byte("pk"), []byte("some payload"))
	require.NoError(t, err)
	for i := range len(env) * 8 {
		c := bytes.Clone(env)
		c[i/8] ^= 1 << (i % 8)
		e, _, err := envelope.Parse(c)
		if err == nil {
			var out []byte
			out, _, err = k.Open(nil, &e)
			require.Nil(t, out)
		}
		require.ErrorIs(t, err, envelope.ErrOpen, "bit %d", i)
	}
	for n := range len(env) {
		_, _, err := envelope.Parse(env[:n])
		require.ErrorIs(t, err, envelope.ErrOpen, "truncated to %d", n)
	}
}

func TestConcatenated(t *testing.T) {
	k := newTestKey(t, "firehose:d")
	var all []byte
	for i := range 10 {
		var err error
		all, err = k.Seal(all, nil, bytes.Repeat([]byte{byte(i)}, i*10))
		require.NoError(t, err)
	}
	for i := 0; len(all) > 0; i++ {
		e, rest, err := envelope.Parse(all)
		require.NoError(t, err)
		out, n, err := k.Open(nil, &e)
		require.NoError(t, err)
		require.Zero(t, n)
		require.True(t, bytes.Equal(bytes.Repeat([]byte{byte(i)}, i*10), out))
		all = rest
	}
}

func TestSealLimits(t *testing.T) {
	k := newTestKey(t, "s")
	dst := []byte("keep")
	out, err := k.Seal(dst, make([]byte, envelope.MaxPartitionKeySize+1), nil)
	require.Error(t, err)
	require.Equal(t, "keep", string(out))
	_, err = k.Seal(nil, nil, make([]byte, envelope.MaxPayloadSize+1))
	require.Error(t, err)
}

func TestDestroy(t *testing.T) {
	k := newTestKey(t, "s")
	env, err := k.Seal(nil, nil, []byte("x"))
	require.NoError(t, err)
	e, _, _ := envelope.Parse(env)
	k.Destroy()
	_, err = k.Seal(nil, nil, []byte("x"))
	require.True(t, errors.Is(err, envelope.ErrKeyDestroyed))
	_, _, err = k.Open(nil, &e)
	require.ErrorIs(t, err, envelope.ErrKeyDestroyed)
}

// TestAllocations pins the allocations of Seal and Open with caller
// buffers: 2 on the hand-optimised path (the AES block and the GCM of the
// record key, which crypto/aes and crypto/cipher allocate; the target is at
// most 3), and at most 16 in FIPS mode, where crypto/hkdf.Expand,
// cipher.NewCTR and cipher.NewGCMWithRandomNonce allocate their own state.
func TestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations")
	}
	for _, mode := range []struct {
		fips  bool
		limit float64
	}{{false, 2}, {true, 16}} {
		if !mode.fips && fips140.Enforced() {
			continue // the hand-optimised path is not allowed there
		}
		k, err := envelope.NewKeyMode(bytes.Repeat([]byte{7}, envelope.KeySize), []byte("wrapped"), []byte("kinesis:a"), mode.fips)
		require.NoError(t, err)
		payload := make([]byte, 1024)
		dst := make([]byte, 0, k.SealedSize(8, len(payload)))
		env, err := k.Seal(nil, []byte("pk-12345"), payload)
		require.NoError(t, err)
		e, _, err := envelope.Parse(env)
		require.NoError(t, err)
		out := make([]byte, 0, 2048)
		seal := testing.AllocsPerRun(100, func() { k.Seal(dst[:0], []byte("pk-12345"), payload) })
		open := testing.AllocsPerRun(100, func() { k.Open(out[:0], &e) })
		t.Logf("fips %v: allocs: seal %.0f, open %.0f", mode.fips, seal, open)
		require.LessOrEqual(t, seal, mode.limit)
		require.LessOrEqual(t, open, mode.limit)
	}
}

// TestFIPSModeInteroperates: envelopes sealed by a key in FIPS mode open
// with a key of the same material on the hand-optimised path, and the other
// way round: the two paths compute the same format.
func TestFIPSModeInteroperates(t *testing.T) {
	if fips140.Enforced() {
		t.Skip("the hand-optimised path is not allowed with GODEBUG=fips140=only")
	}
	dataKey := bytes.Repeat([]byte{9}, envelope.KeySize)
	fipsKey, err := envelope.NewKeyMode(dataKey, []byte("wrapped"), []byte("kinesis:a"), true)
	require.NoError(t, err)
	fastKey, err := envelope.NewKeyMode(dataKey, []byte("wrapped"), []byte("kinesis:a"), false)
	require.NoError(t, err)
	for _, pkLen := range []int{0, 1, 15, 16, 17, 256, envelope.MaxPartitionKeySize} {
		for _, size := range []int{0, 1, 1000} {
			pk := bytes.Repeat([]byte{'p'}, pkLen)
			payload := bytes.Repeat([]byte{'x'}, size)
			for _, dir := range [][2]*envelope.Key{{fipsKey, fastKey}, {fastKey, fipsKey}} {
				env, err := dir[0].Seal(nil, pk, payload)
				require.NoError(t, err)
				e, _, err := envelope.Parse(env)
				require.NoError(t, err)
				out, n, err := dir[1].Open(nil, &e)
				require.NoError(t, err, "sealed fips=%v, opened fips=%v", dir[0].FIPSMode(), dir[1].FIPSMode())
				require.True(t, bytes.Equal(pk, out[:n]) && bytes.Equal(payload, out[n:]))
			}
		}
	}
}
