package envelope

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/ksse-go/ksse/internal/redacttest"
)

// TestKeyPrintsRedacted: a Key, its pointer or a copy, printed with any
// verb or logged with log/slog, shows none of its key material.
func TestKeyPrintsRedacted(t *testing.T) {
	dataKey := bytes.Repeat([]byte{0x5a, 0x17, 0xc3, 0x08}, KeySize/4)
	wrapped, ad := []byte("wrapped-key"), "kinesis:orders"
	for _, fips := range []bool{false, true} {
		k, err := newKey(dataKey, wrapped, []byte(ad), fips)
		if err != nil {
			t.Fatal(err)
		}
		secrets := redacttest.Secrets(t, dataKey, wrapped, ad)
		// keySecrets computes what the Key holds.
		m := k.m.Load()
		if fips {
			if !bytes.Equal(m.prk, secrets[1]) {
				t.Fatal("keySecrets: not the stream key of the Key")
			}
		} else if !bytes.Equal(m.inner[4:4+sha256.Size], secrets[2]) || !bytes.Equal(m.outer[4:4+sha256.Size], secrets[3]) {
			t.Fatal("keySecrets: not the HMAC states of the Key")
		}
		redacttest.Check(t, k, "envelope.Key{REDACTED}", secrets)
	}
	var nilKey *Key
	if got := fmt.Sprint(nilKey); got != "<nil>" {
		t.Errorf("nil Key prints %q", got)
	}
}
