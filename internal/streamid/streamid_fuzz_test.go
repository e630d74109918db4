package streamid

import (
	"regexp"
	"testing"
)

var streamName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// FuzzStream parses its input as a Kinesis and as a Firehose stream name or
// ARN. It must never panic; a rejection is an error and the zero ID; an
// accepted stream has a valid name, is the stream of that name alone, and
// its ARN form parses back to it. The ID is what the envelopes and the KMS
// encryption context are bound to, so two inputs may give the same ID only
// by naming the same stream.
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
			parse     func(string) (ID, error)
		}{
			{"kinesis", "arn:aws:kinesis:eu-west-1:111122223333:stream/", Kinesis},
			{"firehose", "arn:aws:firehose:eu-west-1:111122223333:deliverystream/", Firehose},
		} {
			s, err := p.parse(in)
			if err != nil {
				if s != (ID{}) {
					t.Fatalf("%s %q: error %v with stream %v", p.kind, in, err, s)
				}
				continue
			}
			if s.Kind != p.kind || !streamName.MatchString(s.Name) || s.String() != p.kind+":"+s.Name {
				t.Fatalf("%s %q: accepted as kind %q name %q", p.kind, in, s.Kind, s.Name)
			}
			if in != s.Name && len(in) <= len(s.Name) {
				t.Fatalf("%s %q: accepted as another name, %q", p.kind, in, s.Name)
			}
			for _, again := range []string{s.Name, p.arn + s.Name} {
				s2, err := p.parse(again)
				if err != nil || s2 != s {
					t.Fatalf("%s %q gives %v, but %q gives %v, %v", p.kind, in, s, again, s2, err)
				}
			}
		}
	})
}

func TestEncryptionContext(t *testing.T) {
	k, _ := Kinesis("orders")
	f, _ := Firehose("orders")
	if got := k.EncryptionContext()["kinesis:stream"]; got != "orders" || len(k.EncryptionContext()) != 1 {
		t.Fatalf("kinesis context %v", k.EncryptionContext())
	}
	if got := f.EncryptionContext()["firehose:deliverystream"]; got != "orders" || len(f.EncryptionContext()) != 1 {
		t.Fatalf("firehose context %v", f.EncryptionContext())
	}
	if k == f || k.String() == f.String() {
		t.Fatal("a Kinesis stream and a Firehose stream of the same name share an identity")
	}
}

// TestKinesisConsumerARN: the ARN of an enhanced fan-out consumer names its
// stream; anything else is taken as it is.
func TestKinesisConsumerARN(t *testing.T) {
	for in, want := range map[string]string{
		"orders": "orders",
		"arn:aws:kinesis:us-east-1:1:stream/orders":                            "orders",
		"arn:aws:kinesis:us-east-1:1:stream/orders/consumer/app:1700000000":    "orders",
		"arn:aws-cn:kinesis:cn-north-1:1:stream/a.b-c/consumer/x/consumer/y:1": "a.b-c",
		"not-an-arn/consumer/x": "",
	} {
		s, err := Kinesis(in)
		if s.Name != want || (err != nil) != (want == "") {
			t.Errorf("Kinesis(%q) = %q, %v; want %q", in, s.Name, err, want)
		}
	}
}
