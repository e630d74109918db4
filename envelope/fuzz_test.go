package envelope_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
)

// The fuzz targets are seeded with the envelopes of testdata (loadVectors
// fails if its glob matches too few files, so a moved directory cannot leave
// the fuzzers unseeded), those of at most fuzzSeedMax bytes: the fuzzer
// spends most of its time minimising large inputs, stalling for tens of
// seconds, and the large vectors add no code path.
const fuzzSeedMax = 2 << 10

// FuzzParse splits its input into envelopes, as a consumer of a Firehose
// object does, and checks each: parse→marshal gives the same bytes, the
// fields alias the input, and a failure returns the zero Envelope, a nil
// rest and ErrOpen.
func FuzzParse(f *testing.F) {
	f.Add(addVectorSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			e, rest, err := envelope.Parse(b)
			if err != nil {
				if err != envelope.ErrOpen || e.Salt != nil || e.Body != nil || e.WrappedKey != nil || rest != nil {
					t.Fatalf("failed Parse returned %v, envelope %+v, %d bytes of rest", err, e, len(rest))
				}
				return
			}
			size := len(b) - len(rest)
			if size != e.Size() || len(e.Salt) != envelope.SaltSize {
				t.Fatalf("size %d, Size() %d, salt %d bytes", size, e.Size(), len(e.Salt))
			}
			if !bytes.Equal(rest, b[size:]) {
				t.Fatal("rest is not what follows the envelope")
			}
			// Every field is a slice of the input, without room to grow
			// into the next field.
			for _, fld := range [][]byte{e.Salt, e.Body, e.WrappedKey} {
				if cap(fld) != len(fld) || !within(fld, b[:size]) {
					t.Fatal("a field does not alias the input, or has spare capacity")
				}
			}
			m, err := e.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m, b[:size]) {
				t.Fatalf("parse→marshal gives other bytes:\n in %x\nout %x", b[:size], m)
			}
			b = rest
		}
	})
}

// addVectorSeeds adds the envelopes of the test vectors of at most
// fuzzSeedMax bytes to f's corpus, requiring at least 50, and returns a
// concatenation of success envelopes of at most fuzzSeedMax bytes, for the
// targets that split.
func addVectorSeeds(f *testing.F) (concat []byte) {
	seeds := 0
	for _, v := range loadVectors(f) {
		if len(v.envelope) > fuzzSeedMax {
			continue
		}
		f.Add(v.envelope)
		seeds++
		if v.expect == "success" && len(concat)+len(v.envelope) <= fuzzSeedMax {
			concat = append(concat, v.envelope...)
		}
	}
	require.GreaterOrEqual(f, seeds, 50)
	return concat
}

// within reports whether x lies inside y (or is empty).
func within(x, y []byte) bool {
	if len(x) == 0 {
		return true
	}
	px := uintptr(unsafe.Pointer(unsafe.SliceData(x)))
	py := uintptr(unsafe.Pointer(unsafe.SliceData(y)))
	return py <= px && px+uintptr(len(x)) <= py+uintptr(len(y))
}

// fuzzKey is a consumer key of a vector, with the identity of its key
// material.
type fuzzKey struct {
	key *envelope.Key
	id  string // data key || ad, the wrapped key being the map key
}

// FuzzOpen parses its input and opens the envelope with every vector key
// that holds its wrapped key, and with the pinned data key rebound to
// whatever wrapped key it carries (a KMS that unwraps anything to the same
// data key). It must never panic, must fail with ErrOpen returning dst
// unchanged and no plaintext in its capacity, and may succeed only for an
// envelope of a success vector, under that vector's key, to that vector's
// partition key and payload.
func FuzzOpen(f *testing.F) {
	vs := loadVectors(f)
	keys := map[string][]fuzzKey{} // by wrapped key
	genuine := map[string]*testVector{}
	var pinned *testVector
	for _, v := range vs {
		if len(v.envelope) <= fuzzSeedMax {
			f.Add(v.envelope)
		}
		id := string(v.dataKey) + "\x00" + v.ad
		dup := false
		for _, k := range keys[string(v.wrapped)] {
			dup = dup || k.id == id
		}
		if !dup {
			k, err := envelope.NewKey(v.dataKey, v.wrapped, []byte(v.ad))
			require.NoError(f, err)
			keys[string(v.wrapped)] = append(keys[string(v.wrapped)], fuzzKey{k, id})
		}
		if v.expect == "success" {
			genuine[string(v.envelope)] = v
		}
		if v.file == vecPinned {
			pinned = v
		}
	}
	require.NotNil(f, pinned)
	require.GreaterOrEqual(f, len(genuine), 10)

	f.Fuzz(func(t *testing.T, b []byte) {
		e, _, err := envelope.Parse(b)
		if err != nil {
			return
		}
		raw := b[:e.Size()]
		try := keys[string(e.WrappedKey)]
		if len(try) == 0 {
			k, err := envelope.NewKey(pinned.dataKey, e.WrappedKey, []byte(pinned.ad))
			if err != nil {
				t.Fatal(err)
			}
			try = []fuzzKey{{k, string(pinned.dataKey) + "\x00" + pinned.ad}}
		}
		for _, k := range try {
			dst := make([]byte, 3, 3+len(e.Body))
			copy(dst, "dst")
			out, n, err := k.key.Open(dst, &e)
			if err != nil {
				if !errors.Is(err, envelope.ErrOpen) || n != 0 || len(out) != 3 || &out[0] != &dst[0] {
					t.Fatalf("failed Open: %v, n %d, %d bytes", err, n, len(out))
				}
				for _, c := range dst[3:cap(dst)] {
					if c != 0 {
						t.Fatal("failed Open left bytes in the capacity of dst")
					}
				}
				continue
			}
			v := genuine[string(raw)]
			if v == nil {
				t.Fatalf("Open accepted an envelope that was never sealed: %x", raw)
			}
			if k.id != string(v.dataKey)+"\x00"+v.ad {
				t.Fatalf("%s opened under another key or stream", v.file)
			}
			if !bytes.Equal(out[3:3+n], v.pk) || v.payload != nil && !bytes.Equal(out[3+n:], v.payload) ||
				v.payload == nil && len(out)-3-n != v.size {
				t.Fatalf("%s opened to other bytes", v.file)
			}
		}
	})
}

// TestParseAllocatesNothing checks that Parse allocates nothing, whatever
// lengths its input claims, on every vector and on headers that claim the
// largest lengths.
func TestParseAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations")
	}
	inputs := [][]byte{}
	for _, v := range loadVectors(t) {
		inputs = append(inputs, v.envelope)
	}
	for _, lens := range [][2]uint32{{6144, 10<<20 + 1054}, {0xffff, 0xffffffff}, {1, 30}, {6144, 30}} {
		h := []byte("\xe5KS\x01")
		h = binary.BigEndian.AppendUint16(h, uint16(lens[0]))
		h = binary.BigEndian.AppendUint32(h, lens[1])
		inputs = append(inputs, append(h, make([]byte, 16+64)...))
	}
	for _, in := range inputs {
		a := testing.AllocsPerRun(10, func() { envelope.Parse(in) })
		require.Zero(t, a, "Parse of %d bytes", len(in))
	}
	t.Logf("Parse: 0 allocations on %d inputs", len(inputs))
}

// TestOpenAllocationBoundedByInput measures the bytes Open allocates with a
// nil dst: they must stay within the size of the envelope's body plus a
// constant (the AES and GCM state of the record key, about 1.3 KiB, and the
// rounding of a large allocation to whole 8 KiB pages), whether the envelope
// opens or not.
func TestOpenAllocationBoundedByInput(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations")
	}
	const constant = 16 << 10
	key := newTestKey(t, "kinesis:a")
	var inputs [][]byte
	for _, size := range []int{0, 1 << 10, 1 << 20, 10 << 20} {
		env, err := key.Seal(nil, []byte("pk"), make([]byte, size))
		require.NoError(t, err)
		inputs = append(inputs, env)
		bad := bytes.Clone(env)
		bad[len(bad)-len(key.WrappedKey())-1] ^= 1 // tag
		inputs = append(inputs, bad)
	}
	for _, in := range inputs {
		e, _, err := envelope.Parse(in)
		require.NoError(t, err)
		var best uint64 = 1 << 62
		for range 3 {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			key.Open(nil, &e)
			runtime.ReadMemStats(&m1)
			best = min(best, m1.TotalAlloc-m0.TotalAlloc)
		}
		bound := uint64(len(e.Body) + constant)
		t.Logf("Open of a %d-byte envelope: %d bytes allocated (bound %d)", len(in), best, bound)
		require.LessOrEqual(t, best, bound)
	}
}
