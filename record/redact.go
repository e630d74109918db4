package record

import (
	"fmt"
	"io"
	"log/slog"
)

// An Encryptor or a Decryptor holds data keys (envelope.Key), and prints as
// "record.Encryptor{REDACTED}" or "record.Decryptor{REDACTED}" with every
// fmt verb and in log/slog output.

// String returns "record.Encryptor{REDACTED}".
func (e *Encryptor) String() string { return redactText(e == nil, "record.Encryptor{REDACTED}") }

// GoString returns the same text as String, for %#v.
func (e *Encryptor) GoString() string { return e.String() }

// Format writes the text of String for every verb, flag and width.
func (e *Encryptor) Format(f fmt.State, verb rune) { io.WriteString(f, e.String()) }

// LogValue returns the text of String, for log/slog.
func (e *Encryptor) LogValue() slog.Value { return slog.StringValue(e.String()) }

// String returns "record.Decryptor{REDACTED}".
func (d *Decryptor) String() string { return redactText(d == nil, "record.Decryptor{REDACTED}") }

// GoString returns the same text as String, for %#v.
func (d *Decryptor) GoString() string { return d.String() }

// Format writes the text of String for every verb, flag and width.
func (d *Decryptor) Format(f fmt.State, verb rune) { io.WriteString(f, d.String()) }

// LogValue returns the text of String, for log/slog.
func (d *Decryptor) LogValue() slog.Value { return slog.StringValue(d.String()) }

// redactText returns "<nil>" for a nil receiver, else text.
func redactText(isNil bool, text string) string {
	if isNil {
		return "<nil>"
	}
	return text
}
