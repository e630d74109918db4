package envelope_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
)

// readAll splits in with a Reader and returns the envelopes (marshaled
// again), their offsets, and the error that ended the input (nil for io.EOF).
func readAll(t testing.TB, in io.Reader) (envs [][]byte, offsets []int64, err error) {
	t.Helper()
	r := envelope.NewReader(in)
	require.Nil(t, r.Bytes(), "no envelope yet")
	for {
		e, off, err := r.Next()
		if err == io.EOF {
			return envs, offsets, nil
		}
		if err != nil {
			// Sticky: the same error, at the same offset, again.
			e2, off2, err2 := r.Next()
			if err2 != err || off2 != off || e2.Body != nil {
				t.Fatalf("after %v at %d, Next returned %v at %d", err, off, err2, off2)
			}
			require.Nil(t, r.Bytes(), "no envelope after an error")
			return envs, offsets, err
		}
		m, merr := e.MarshalBinary()
		require.NoError(t, merr)
		require.Equal(t, m, r.Bytes(), "Bytes is the envelope as read")
		envs = append(envs, m)
		offsets = append(offsets, off)
	}
}

func TestReaderSplits(t *testing.T) {
	k := newTestKey(t, "kinesis:a")
	var obj []byte
	var want [][]byte
	for _, size := range []int{0, 1, 1 << 10, 100 << 10} {
		env, err := k.Seal(nil, []byte("pk"), make([]byte, size))
		require.NoError(t, err)
		want = append(want, env)
		obj = append(obj, env...)
	}
	// Through a reader that returns one byte at a time, too.
	for _, in := range []io.Reader{bytes.NewReader(obj), iotest.OneByteReader(bytes.NewReader(obj))} {
		envs, offsets, err := readAll(t, in)
		require.NoError(t, err)
		require.Equal(t, want, envs)
		var off int64
		for i, env := range want {
			require.Equal(t, off, offsets[i])
			off += int64(len(env))
		}
	}
	envs, _, err := readAll(t, bytes.NewReader(nil))
	require.NoError(t, err)
	require.Empty(t, envs)
}

func TestReaderMalformed(t *testing.T) {
	k := newTestKey(t, "kinesis:a")
	first, err := k.Seal(nil, []byte("pk"), []byte("first"))
	require.NoError(t, err)
	second, err := k.Seal(nil, []byte("pk"), []byte("second"))
	require.NoError(t, err)
	obj := append(bytes.Clone(first), second...)
	at := int64(len(first)) // where the second envelope starts

	with := func(f func(b []byte)) []byte {
		b := bytes.Clone(obj)
		f(b[at:])
		return b
	}
	for name, tc := range map[string]struct {
		in      []byte
		good    int   // envelopes split before the error
		errAt   int64 // offset the error reports
		message string
	}{
		"trailing newline":     {append(bytes.Clone(obj), '\n'), 2, int64(len(obj)), "no envelope header at byte"},
		"trailing magic":       {append(bytes.Clone(obj), 0xE5, 'K'), 2, int64(len(obj)), "2 bytes at byte"},
		"trailing garbage":     {append(bytes.Clone(obj), make([]byte, 40)...), 2, int64(len(obj)), "no envelope header at byte"},
		"leading plaintext":    {append([]byte(`{"json":1}`), obj...), 0, 0, "no envelope header at byte 0"},
		"truncated body":       {obj[:len(obj)-1], 1, at, "truncated envelope at byte"},
		"truncated header":     {obj[:at+10], 1, at, "10 bytes at byte"},
		"unknown version":      {with(func(b []byte) { b[3] = 2 }), 1, at, "envelope version 2"},
		"zero wrapped key len": {with(func(b []byte) { binary.BigEndian.PutUint16(b[4:], 0) }), 1, at, "invalid lengths"},
		"huge wrapped key len": {with(func(b []byte) { binary.BigEndian.PutUint16(b[4:], envelope.MaxWrappedKeySize+1) }), 1, at, "invalid lengths"},
		"short body len":       {with(func(b []byte) { binary.BigEndian.PutUint32(b[6:], 29) }), 1, at, "invalid lengths"},
		"huge body len":        {with(func(b []byte) { binary.BigEndian.PutUint32(b[6:], 0xffffffff) }), 1, at, "invalid lengths"},
		"longer body len":      {with(func(b []byte) { b[9]++ }), 1, at, "truncated envelope"},
	} {
		t.Run(name, func(t *testing.T) {
			envs, _, err := readAll(t, bytes.NewReader(tc.in))
			require.ErrorIs(t, err, envelope.ErrMalformed)
			require.ErrorContains(t, err, tc.message)
			require.Len(t, envs, tc.good)
			_, off, _ := envelope.NewReader(bytes.NewReader(tc.in)).Next()
			if tc.good == 0 {
				require.Equal(t, tc.errAt, off)
			}
			r := envelope.NewReader(bytes.NewReader(tc.in))
			for range tc.good {
				_, _, err := r.Next()
				require.NoError(t, err)
			}
			_, off, _ = r.Next()
			require.Equal(t, tc.errAt, off, "offset of the error")
		})
	}
}

func TestReaderReadError(t *testing.T) {
	k := newTestKey(t, "kinesis:a")
	env, err := k.Seal(nil, []byte("pk"), []byte("payload"))
	require.NoError(t, err)
	boom := errors.New("boom")
	in := io.MultiReader(bytes.NewReader(env), bytes.NewReader(env[:40]), iotest.ErrReader(boom))
	envs, _, err := readAll(t, in)
	require.Len(t, envs, 1)
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, envelope.ErrMalformed)
}

// TestReaderAllocationBoundedByInput: a header that claims the largest
// lengths, followed by little, costs what the input holds, not 10 MiB.
func TestReaderAllocationBoundedByInput(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations")
	}
	h := []byte("\xe5KS\x01")
	h = binary.BigEndian.AppendUint16(h, envelope.MaxWrappedKeySize)
	h = binary.BigEndian.AppendUint32(h, 2+envelope.MaxPartitionKeySize+envelope.NonceSize+envelope.MaxPayloadSize+envelope.TagSize)
	in := append(h, make([]byte, 16+1000)...)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, _, err := envelope.NewReader(bytes.NewReader(in)).Next()
	runtime.ReadMemStats(&m1)
	require.ErrorIs(t, err, envelope.ErrMalformed)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("a header claiming %d bytes on %d bytes of input: %d bytes allocated", 10<<20, len(in), alloc)
	require.Less(t, alloc, uint64(64<<10))
}

// FuzzReader splits its input with a Reader. It must never panic; the
// envelopes it returns, marshaled again, must be the input byte for byte
// from offset 0 up to where it stops; it stops with io.EOF only at the end
// of the input, otherwise with ErrMalformed at the offset of the first
// bytes it cannot split; and it allocates within a bound derived from the
// input's length, whatever lengths the input claims.
func FuzzReader(f *testing.F) {
	concat := addVectorSeeds(f)
	f.Add(concat)
	f.Add(append(bytes.Clone(concat), '\n'))
	f.Fuzz(func(t *testing.T, in []byte) {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		r := envelope.NewReader(bytes.NewReader(in))
		var next int64
		for {
			e, off, err := r.Next()
			if off != next {
				t.Fatalf("offset %d, want %d", off, next)
			}
			if err == io.EOF {
				if next != int64(len(in)) {
					t.Fatalf("io.EOF at %d of %d bytes", next, len(in))
				}
				break
			}
			if err != nil {
				if !errors.Is(err, envelope.ErrMalformed) || next >= int64(len(in)) {
					t.Fatalf("error %v at %d of %d bytes", err, next, len(in))
				}
				// Parse, which the Reader's framing must agree with, fails there too.
				if _, _, perr := envelope.Parse(in[next:]); perr == nil {
					t.Fatalf("Reader failed (%v) where Parse succeeds", err)
				}
				break
			}
			m, merr := e.MarshalBinary()
			if merr != nil || !bytes.Equal(m, in[off:off+int64(len(m))]) {
				t.Fatalf("envelope at %d does not marshal to the input: %v", off, merr)
			}
			next += int64(len(m))
		}
		runtime.ReadMemStats(&m1)
		if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > uint64(8*len(in)+1<<20) {
			t.Fatalf("%d bytes allocated for %d bytes of input", alloc, len(in))
		}
	})
}
