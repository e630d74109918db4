package record

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidStream is returned for a stream name or ARN that Kinesis (or
// Firehose) would not accept.
var ErrInvalidStream = errors.New("record: invalid stream name or ARN")

// Stream identifies where records are written: a Kinesis data stream or a
// Firehose delivery stream. Its identity is the kind and the name; a name and
// the ARN of the same stream are the same Stream.
type Stream struct {
	kind string // "kinesis" or "firehose"
	name string
}

// Encryption context keys. "aws:" is reserved by AWS, so ksse uses the
// service name alone.
const (
	ContextKeyKinesis  = "kinesis:stream"
	ContextKeyFirehose = "firehose:deliverystream"
)

// KinesisStream returns the Stream of a Kinesis data stream given by name or
// ARN (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME), or by the ARN of
// one of its enhanced fan-out consumers (…:stream/NAME/consumer/C:T).
func KinesisStream(nameOrARN string) (Stream, error) {
	if strings.HasPrefix(nameOrARN, "arn:") {
		if i := strings.Index(nameOrARN, "/consumer/"); i > 0 {
			nameOrARN = nameOrARN[:i]
		}
	}
	return parseStream("kinesis", "stream/", nameOrARN)
}

// FirehoseStream returns the Stream of a Firehose delivery stream given by
// name or ARN (arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/NAME).
func FirehoseStream(nameOrARN string) (Stream, error) {
	return parseStream("firehose", "deliverystream/", nameOrARN)
}

func parseStream(kind, resource, s string) (Stream, error) {
	name := s
	if strings.HasPrefix(s, "arn:") {
		// arn:partition:service:region:account:resource
		parts := strings.SplitN(s, ":", 6)
		if len(parts) != 6 || parts[2] != kind || !strings.HasPrefix(parts[5], resource) {
			return Stream{}, fmt.Errorf("%w: %q is not a %s ARN", ErrInvalidStream, s, kind)
		}
		name = strings.TrimPrefix(parts[5], resource)
	}
	if !validName(name) {
		return Stream{}, fmt.Errorf("%w: %q (want 1 to 128 of a-z, A-Z, 0-9, _ . -)", ErrInvalidStream, s)
	}
	return Stream{kind: kind, name: name}, nil
}

// validName reports whether name matches [a-zA-Z0-9_.-]{1,128}, the rule of
// Kinesis stream and Firehose delivery stream names.
func validName(name string) bool {
	if len(name) < 1 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Name returns the stream name.
func (s Stream) Name() string { return s.name }

// Kind returns "kinesis" or "firehose".
func (s Stream) Kind() string { return s.kind }

// String returns kind:name, the envelope associated data of the stream.
func (s Stream) String() string { return s.kind + ":" + s.name }

// EncryptionContext returns the KMS encryption context of the stream's data
// keys.
func (s Stream) EncryptionContext() map[string]string {
	if s.kind == "firehose" {
		return map[string]string{ContextKeyFirehose: s.name}
	}
	return map[string]string{ContextKeyKinesis: s.name}
}

func (s Stream) valid() bool { return s.kind != "" }
