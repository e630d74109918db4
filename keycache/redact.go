package keycache

import (
	"fmt"
	"io"
	"log/slog"
)

// A Producer or a Consumer holds data keys (envelope.Key), and prints as
// "keycache.Producer{REDACTED}" or "keycache.Consumer{REDACTED}" with every
// fmt verb and in log/slog output.

// String returns "keycache.Producer{REDACTED}".
func (p *Producer) String() string { return redactText(p == nil, "keycache.Producer{REDACTED}") }

// GoString returns the same text as String, for %#v.
func (p *Producer) GoString() string { return p.String() }

// Format writes the text of String for every verb, flag and width.
func (p *Producer) Format(f fmt.State, verb rune) { io.WriteString(f, p.String()) }

// LogValue returns the text of String, for log/slog.
func (p *Producer) LogValue() slog.Value { return slog.StringValue(p.String()) }

// String returns "keycache.Consumer{REDACTED}".
func (c *Consumer) String() string { return redactText(c == nil, "keycache.Consumer{REDACTED}") }

// GoString returns the same text as String, for %#v.
func (c *Consumer) GoString() string { return c.String() }

// Format writes the text of String for every verb, flag and width.
func (c *Consumer) Format(f fmt.State, verb rune) { io.WriteString(f, c.String()) }

// LogValue returns the text of String, for log/slog.
func (c *Consumer) LogValue() slog.Value { return slog.StringValue(c.String()) }

// redactText returns "<nil>" for a nil receiver, else text.
func redactText(isNil bool, text string) string {
	if isNil {
		return "<nil>"
	}
	return text
}
