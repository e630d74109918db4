package kssefirehose

import (
	"fmt"
	"io"
	"log/slog"
)

// A Reader holds a record.Decryptor, and prints as
// "kssefirehose.Reader{REDACTED}" with every fmt verb and in log/slog
// output: what fmt shows of a struct's fields (for %s, the fields of the
// Decryptor too) must not depend on how a Decryptor keeps its keys.

// String returns "kssefirehose.Reader{REDACTED}".
func (r *Reader) String() string {
	if r == nil {
		return "<nil>"
	}
	return "kssefirehose.Reader{REDACTED}"
}

// GoString returns the same text as String, for %#v.
func (r *Reader) GoString() string { return r.String() }

// Format writes the text of String for every verb, flag and width.
func (r *Reader) Format(f fmt.State, verb rune) { io.WriteString(f, r.String()) }

// LogValue returns the text of String, for log/slog.
func (r *Reader) LogValue() slog.Value { return slog.StringValue(r.String()) }
