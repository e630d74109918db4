package envelope

import (
	"fmt"
	"io"
	"log/slog"
)

// redactedKey is how a Key prints.
const redactedKey = "envelope.Key{REDACTED}"

// String returns "envelope.Key{REDACTED}": a Key never prints its key
// material.
func (k *Key) String() string { return redacted(k == nil, redactedKey) }

// GoString returns the same text as String, for %#v.
func (k *Key) GoString() string { return k.String() }

// Format writes the text of String for every verb, flag and width.
func (k *Key) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LogValue returns the text of String, for log/slog.
func (k *Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// redacted returns "<nil>" for a nil receiver, else text.
func redacted(isNil bool, text string) string {
	if isNil {
		return "<nil>"
	}
	return text
}
