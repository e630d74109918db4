package record_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/ksse-go/ksse/record"
)

var streamName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// FuzzStream parses its input as a Kinesis and as a Firehose stream name or
// ARN. It must never panic; a rejection is ErrInvalidStream and the zero
// Stream; an accepted stream has a valid name, is the stream of that name
// alone, and its ARN form parses back to it. The stream is what the
// envelopes and the KMS encryption context are bound to, so two inputs may
// give the same Stream only by naming the same stream.
func FuzzStream(f *testing.F) {
	for _, s := range []string{
		"orders", "a", "A.b_c-9", "",
		"arn:aws:kinesis:us-east-1:123456789012:stream/orders",
		"arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/app:1700000000",
		"arn:aws-cn:firehose:cn-north-1:123456789012:deliverystream/clicks",
		"arn:aws:kinesis:us-east-1:123456789012:stream/",
		"arn:aws:kinesis::::stream/x",
		"arn:aws:s3:::bucket/stream/orders",
		"stream/orders", "orders/consumer/x", "with space", "ü",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, p := range []struct {
			kind, arn string
			parse     func(string) (record.Stream, error)
		}{
			{"kinesis", "arn:aws:kinesis:eu-west-1:111122223333:stream/", record.KinesisStream},
			{"firehose", "arn:aws:firehose:eu-west-1:111122223333:deliverystream/", record.FirehoseStream},
		} {
			s, err := p.parse(in)
			if err != nil {
				if !errors.Is(err, record.ErrInvalidStream) || s != (record.Stream{}) {
					t.Fatalf("%s %q: error %v with stream %v", p.kind, in, err, s)
				}
				continue
			}
			if s.Kind() != p.kind || !streamName.MatchString(s.Name()) || s.String() != p.kind+":"+s.Name() {
				t.Fatalf("%s %q: accepted as kind %q name %q", p.kind, in, s.Kind(), s.Name())
			}
			if in != s.Name() && len(in) <= len(s.Name()) {
				t.Fatalf("%s %q: accepted as another name, %q", p.kind, in, s.Name())
			}
			for _, again := range []string{s.Name(), p.arn + s.Name()} {
				s2, err := p.parse(again)
				if err != nil || s2 != s {
					t.Fatalf("%s %q gives %v, but %q gives %v, %v", p.kind, in, s, again, s2, err)
				}
			}
		}
	})
}
