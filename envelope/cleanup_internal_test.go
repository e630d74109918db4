package envelope

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// TestKeyMaterialClearedWhenCollected checks that the key material of a Key
// (the HMAC states, or the stream key in FIPS mode) is cleared once the Key
// is unreachable.
func TestKeyMaterialClearedWhenCollected(t *testing.T) {
	for _, fips := range []bool{false, true} {
		k, err := newKey(bytes.Repeat([]byte{1}, KeySize), []byte("w"), []byte("ad"), fips)
		if err != nil {
			t.Fatal(err)
		}
		// Alias the material, not the Key.
		m := k.m.Load()
		material := [][]byte{m.inner, m.outer}
		if fips {
			material = [][]byte{m.prk}
		}
		size := 0
		for _, m := range material {
			size += len(m)
		}
		if size == 0 {
			t.Fatalf("fips %v: no key material", fips)
		}
		zero := func() bool {
			n := 0
			for _, m := range material {
				n += bytes.Count(m, []byte{0})
			}
			return n == size
		}
		if zero() {
			t.Fatalf("fips %v: material is zero before collection", fips)
		}
		k = nil
		deadline := time.Now().Add(5 * time.Second)
		for !zero() {
			if time.Now().After(deadline) {
				t.Fatalf("fips %v: key material not cleared after the Key was collected", fips)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
	}
}
