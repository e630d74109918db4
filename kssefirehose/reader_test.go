package kssefirehose_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kssefirehose"
	"github.com/ksse-go/ksse/record"
)

// object returns the envelopes of payloads for the delivery stream
// "clicks", concatenated, and where each starts.
func object(t testing.TB, enc *record.Encryptor, payloads ...string) ([]byte, []int) {
	t.Helper()
	var obj []byte
	var offsets []int
	for _, p := range payloads {
		env, err := kssefirehose.Encrypt(context.Background(), enc, "clicks", []byte(p))
		require.NoError(t, err)
		offsets = append(offsets, len(obj))
		obj = append(obj, env...)
	}
	return obj, offsets
}

func TestReader(t *testing.T) {
	_, enc, dec := newPair(t)
	big := string(bytes.Repeat([]byte("x"), 100<<10))
	obj, _ := object(t, enc, "a", "", big, "d")

	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data+EOF": iotest.DataErrReader,
	} {
		r, err := kssefirehose.NewReader(dec, "clicks", wrap(bytes.NewReader(obj)))
		require.NoError(t, err)
		var got []string
		for {
			d, err := r.Next(context.Background())
			if err == io.EOF {
				break
			}
			require.NoError(t, err, name)
			require.True(t, d.Encrypted)
			require.Empty(t, d.PartitionKey)
			require.NotEmpty(t, d.KeyARN)
			got = append(got, string(d.Data))
		}
		require.Equal(t, []string{"a", "", big, "d"}, got, name)
		_, err = r.Next(context.Background())
		require.Equal(t, io.EOF, err, "after the end")
	}

	// An empty object has no records.
	got, err := readAll(t, dec, "clicks", nil)
	require.NoError(t, err)
	require.Empty(t, got)
}

// TestReaderFailures checks each way an object can be wrong: the records
// before the fault are returned, the faulty one never.
func TestReaderFailures(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newPair(t)
	obj, offsets := object(t, enc, "first", "second secret", "third")

	type want struct {
		records []string
		index   int
		offset  int
		err     error
		sticky  bool // no record after the error
	}
	tampered := bytes.Clone(obj)
	tampered[offsets[1]+envelope.HeaderSize+3] ^= 1
	wrongVersion := bytes.Clone(obj)
	wrongVersion[offsets[1]+3] = 2
	badLength := bytes.Clone(obj)
	binary.BigEndian.PutUint16(badLength[offsets[1]+4:], 0)
	longer := bytes.Clone(obj) // body length one more: the tag fails, framing is lost
	binary.BigEndian.PutUint32(longer[offsets[2]+6:], binary.BigEndian.Uint32(longer[offsets[2]+6:])+1)
	for name, c := range map[string]struct {
		obj []byte
		want
	}{
		"trailing garbage":  {append(bytes.Clone(obj), "garbage"...), want{[]string{"first", "second secret", "third"}, 3, len(obj), envelope.ErrMalformed, true}},
		"trailing newline":  {append(bytes.Clone(obj), '\n'), want{[]string{"first", "second secret", "third"}, 3, len(obj), envelope.ErrMalformed, true}},
		"leading plaintext": {append([]byte("{\"json\":1}"), obj...), want{nil, 0, 0, envelope.ErrMalformed, true}},
		"truncated":         {obj[:len(obj)-1], want{[]string{"first", "second secret"}, 2, offsets[2], envelope.ErrMalformed, true}},
		"truncated header":  {obj[:offsets[1]+10], want{[]string{"first"}, 1, offsets[1], envelope.ErrMalformed, true}},
		"tampered":          {tampered, want{[]string{"first"}, 1, offsets[1], envelope.ErrOpen, false}},
		"wrong version":     {wrongVersion, want{[]string{"first"}, 1, offsets[1], envelope.ErrMalformed, true}},
		"zero key length":   {badLength, want{[]string{"first"}, 1, offsets[1], envelope.ErrMalformed, true}},
		"longer body":       {longer, want{[]string{"first", "second secret"}, 2, offsets[2], envelope.ErrMalformed, true}},
	} {
		r, err := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(c.obj))
		require.NoError(t, err)
		var got []string
		var rerr error
		for {
			d, err := r.Next(ctx)
			if err != nil {
				rerr = err
				break
			}
			got = append(got, string(d.Data))
		}
		require.Equal(t, c.records, got, name)
		var re *kssefirehose.ReadError
		require.ErrorAs(t, rerr, &re, name)
		require.ErrorIs(t, rerr, c.err, name)
		require.Equal(t, c.index, re.Index, name)
		require.EqualValues(t, c.offset, re.Offset, name)
		require.NotContains(t, rerr.Error(), "secret", name)

		_, next := r.Next(ctx)
		if c.sticky {
			require.Equal(t, rerr, next, "%s: the error should stay", name)
		} else {
			require.NoError(t, next, "%s: the record after a failed one", name)
		}
	}
}

// TestReaderReadError passes read errors on, wrapped and sticky.
func TestReaderReadError(t *testing.T) {
	_, enc, dec := newPair(t)
	obj, offsets := object(t, enc, "a", "b")
	boom := errors.New("connection reset")
	r, err := kssefirehose.NewReader(dec, "clicks", io.MultiReader(bytes.NewReader(obj[:offsets[1]+40]), iotest.ErrReader(boom)))
	require.NoError(t, err)
	d, err := r.Next(context.Background())
	require.NoError(t, err)
	require.Equal(t, "a", string(d.Data))
	_, err = r.Next(context.Background())
	require.ErrorIs(t, err, boom)
	_, err2 := r.Next(context.Background())
	require.Equal(t, err, err2)

	_, err = kssefirehose.NewReader(nil, "clicks", bytes.NewReader(obj))
	require.ErrorIs(t, err, record.ErrInvalidInput)
	_, err = kssefirehose.NewReader(dec, "arn:aws:kinesis:us-east-1:1:stream/clicks", bytes.NewReader(obj))
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, "is not a firehose ARN")
}

// TestReaderAll checks that the iterator goes on after a record that fails
// and stops at the end or at broken framing.
func TestReaderAll(t *testing.T) {
	_, enc, dec := newPair(t)
	obj, offsets := object(t, enc, "a", "b", "c")
	obj[offsets[1]+envelope.HeaderSize] ^= 1
	obj = append(obj, 0xE5)
	r, err := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(obj))
	require.NoError(t, err)
	var got []string
	for d, err := range r.All(context.Background()) {
		switch {
		case errors.Is(err, envelope.ErrOpen):
			got = append(got, "ErrOpen")
		case errors.Is(err, envelope.ErrMalformed):
			got = append(got, "ErrMalformed")
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, string(d.Data))
		}
	}
	require.Equal(t, []string{"a", "ErrOpen", "c", "ErrMalformed"}, got)
}

// TestReaderBoundedAllocation feeds headers that claim the largest
// envelope, followed by little: the Reader must allocate for the bytes
// that are there, not for the lengths claimed.
func TestReaderBoundedAllocation(t *testing.T) {
	_, _, dec := newPair(t)
	hdr := make([]byte, envelope.HeaderSize)
	copy(hdr, []byte{0xE5, 'K', 'S', 1})
	binary.BigEndian.PutUint16(hdr[4:], envelope.MaxWrappedKeySize)
	binary.BigEndian.PutUint32(hdr[6:], 2+envelope.MaxPartitionKeySize+envelope.NonceSize+envelope.MaxPayloadSize+envelope.TagSize)
	obj := append(hdr, make([]byte, 100)...)

	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		r, err := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(obj))
		require.NoError(t, err)
		_, err = r.Next(context.Background())
		require.ErrorIs(t, err, envelope.ErrMalformed)
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d bytes allocated per read of a header claiming %d bytes", perRun, envelope.MaxPayloadSize)
	require.Less(t, perRun, uint64(64<<10))
}

// FuzzReader splits and decrypts arbitrary objects. It must never panic,
// never return a record that was not sealed by the test's Encryptor for
// the delivery stream (so nothing that failed authentication), and
// allocate in proportion to its input, not to the lengths it claims.
func FuzzReader(f *testing.F) {
	_, enc, dec := newPair(f)
	payloads := []string{"", "a", "hello, firehose", string(bytes.Repeat([]byte{0xE5, 'K', 'S', 1}, 50))}
	sealed := map[string]bool{}
	for _, p := range payloads {
		sealed[p] = true
	}
	obj, offsets := object(f, enc, payloads...)
	f.Add(obj)
	f.Add(obj[:offsets[2]])
	f.Add(obj[offsets[1]:offsets[2]])
	f.Add(obj[:len(obj)-1])
	f.Add(append(bytes.Clone(obj), obj[:envelope.HeaderSize]...))
	f.Add([]byte{})
	f.Add([]byte{0xE5, 'K', 'S', 1})
	f.Add([]byte("plain text\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for d, err := range r.All(context.Background()) {
			n++
			if n > len(data)/envelope.Overhead+1 {
				t.Fatalf("%d results from %d bytes", n, len(data))
			}
			if err != nil {
				var re *kssefirehose.ReadError
				if !errors.As(err, &re) || d.Data != nil {
					t.Fatalf("error %v (%T) with data %q", err, err, d.Data)
				}
				continue
			}
			if !sealed[string(d.Data)] {
				t.Fatalf("returned %q, which was never sealed", d.Data)
			}
		}
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(8*len(data)+1<<20) {
			t.Fatalf("%d bytes allocated for %d bytes of input", alloc, len(data))
		}
	})
}

// BenchmarkReader measures splitting and decrypting an object of 1,000
// records of 1 KiB.
func BenchmarkReader(b *testing.B) {
	_, enc, dec := newPair(b)
	payloads := make([]string, 1000)
	for i := range payloads {
		payloads[i] = string(make([]byte, 1024))
	}
	obj, _ := object(b, enc, payloads...)
	b.SetBytes(int64(len(obj)))
	for b.Loop() {
		r, err := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(obj))
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range r.All(context.Background()) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
