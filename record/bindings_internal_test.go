package record

import (
	"fmt"
	"sync"
	"testing"
)

func mapLen(m *sync.Map) int {
	n := 0
	m.Range(func(any, any) bool { n++; return true })
	return n
}

// TestBindingsBounded: a process that names ever new streams keeps at most
// maxBindings of them parsed, and every lookup still gives the right stream.
func TestBindingsBounded(t *testing.T) {
	var bs bindings
	for i := range 3 * maxBindings {
		name := fmt.Sprint("stream-", i)
		b, err := bs.kinesisStream(name)
		if err != nil || b.s.Name != name || b.kb.AD != "kinesis:"+name {
			t.Fatalf("%s: %v, %+v", name, err, b)
		}
		if n := mapLen(&bs.kinesis); n > maxBindings {
			t.Fatalf("%d names remembered", n)
		}
	}
	if n := mapLen(&bs.streams); n > maxBindings {
		t.Fatalf("%d streams remembered", n)
	}
}
