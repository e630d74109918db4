package envelope

import (
	"bytes"
	"testing"
)

// TestReaderBufferIsExact: the Reader's buffer ends at the exact size of the
// largest envelope it has read, not at the next power of two.
func TestReaderBufferIsExact(t *testing.T) {
	k, err := newKey(bytes.Repeat([]byte{1}, KeySize), []byte("wrapped"), []byte("kinesis:a"), fipsMode)
	if err != nil {
		t.Fatal(err)
	}
	var obj []byte
	largest := 0
	for _, size := range []int{100, 3 << 20, 5000} {
		env, err := k.Seal(nil, []byte("pk"), make([]byte, size))
		if err != nil {
			t.Fatal(err)
		}
		obj = append(obj, env...)
		largest = max(largest, len(env))
	}
	r := NewReader(bytes.NewReader(obj))
	for range 3 {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(r.buf) != largest {
		t.Fatalf("buffer capacity %d after envelopes of at most %d bytes", cap(r.buf), largest)
	}
}
