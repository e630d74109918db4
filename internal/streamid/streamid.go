// Package streamid parses the names and ARNs of Kinesis data streams and
// Firehose delivery streams into the identity that envelopes and data keys
// are bound to.
package streamid

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ID is a stream's identity: its kind and its name. A name and the ARN of
// the same stream give the same ID.
type ID struct {
	Kind string // "kinesis" or "firehose"
	Name string
}

// Kinesis returns the ID of a Kinesis data stream given by name, by ARN
// (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME), or by the ARN of one
// of its enhanced fan-out consumers (…:stream/NAME/consumer/C:T).
func Kinesis(nameOrARN string) (ID, error) {
	if strings.HasPrefix(nameOrARN, "arn:") {
		if i := strings.Index(nameOrARN, "/consumer/"); i > 0 {
			nameOrARN = nameOrARN[:i]
		}
	}
	return parse("kinesis", "stream/", nameOrARN)
}

// Firehose returns the ID of a Firehose delivery stream given by name or by
// ARN (arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/NAME).
func Firehose(nameOrARN string) (ID, error) {
	return parse("firehose", "deliverystream/", nameOrARN)
}

func parse(kind, resource, s string) (ID, error) {
	name := s
	if strings.HasPrefix(s, "arn:") {
		// arn:partition:service:region:account:resource
		parts := strings.SplitN(s, ":", 6)
		if len(parts) != 6 || parts[2] != kind || !strings.HasPrefix(parts[5], resource) {
			return ID{}, fmt.Errorf("stream %q is not a %s ARN", s, kind)
		}
		name = strings.TrimPrefix(parts[5], resource)
	}
	if !validName(name) {
		return ID{}, fmt.Errorf("stream %q: want 1 to 128 of a-z, A-Z, 0-9, _ . -", s)
	}
	return ID{Kind: kind, Name: name}, nil
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

// String returns kind:name, the envelope associated data of the stream.
func (s ID) String() string { return s.Kind + ":" + s.Name }

// EncryptionContext returns the KMS encryption context of the stream's data
// keys: {"kinesis:stream": NAME} or {"firehose:deliverystream": NAME}. "aws:"
// is reserved by AWS, so the key is the service name alone.
func (s ID) EncryptionContext() map[string]string {
	if s.Kind == "firehose" {
		return map[string]string{"firehose:deliverystream": s.Name}
	}
	return map[string]string{"kinesis:stream": s.Name}
}

// Of returns the stream a request names: its StreamARN if set, else its
// StreamName.
func Of(arn, name *string) string {
	if s := aws.ToString(arn); s != "" {
		return s
	}
	return aws.ToString(name)
}
