package envelope

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// TestKeyMaterialClearedWhenCollected checks that the HMAC states of a Key
// are cleared once the Key is unreachable.
func TestKeyMaterialClearedWhenCollected(t *testing.T) {
	k, err := NewKey(bytes.Repeat([]byte{1}, KeySize), []byte("w"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	inner, outer := k.inner, k.outer // alias the states, not the Key
	zero := func() bool { return bytes.Count(inner, []byte{0})+bytes.Count(outer, []byte{0}) == 2*hmacStateSize }
	if zero() {
		t.Fatal("states are zero before collection")
	}
	k = nil
	deadline := time.Now().Add(5 * time.Second)
	for !zero() {
		if time.Now().After(deadline) {
			t.Fatal("key material not cleared after the Key was collected")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}
