package redacttest

import (
	"encoding/base64"
	"fmt"
	"testing"
)

// TestLeakFindsSecrets: the checker of the redaction tests finds the forms
// it looks for.
func TestLeakFindsSecrets(t *testing.T) {
	sec := []byte("0123456789abcdefghijklmnopqrstuv")
	for _, out := range []string{
		fmt.Sprintf("%v", sec), fmt.Sprintf("%x", sec), fmt.Sprintf("%X", sec),
		fmt.Sprintf("%#v", sec), fmt.Sprintf("% x", sec), fmt.Sprintf("%q", sec),
		string(sec), base64.StdEncoding.EncodeToString(sec[5:]),
		base64.RawURLEncoding.EncodeToString(sec[1:20]),
		fmt.Sprintf("%+v", struct{ B []byte }{sec[3:13]}),
	} {
		if Leak(out, sec) == "" {
			t.Errorf("leak does not see the secret in %q", out)
		}
	}
	if s := Leak("envelope.Key{REDACTED}", sec); s != "" {
		t.Errorf("leak sees %s in the redacted text", s)
	}
}
