package main

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzWrappedKeyID feeds arbitrary wrapped keys (the part of an envelope
// that anyone who can write to a stream chooses) to the parser behind
// `ksse inspect`'s kmsKeyId. It must never panic; the id it reports is
// "unknown" or bytes that the blob holds, printable ASCII that a terminal
// shows as it is, in a KMS key id or ARN shape.
func FuzzWrappedKeyID(f *testing.F) {
	uuid := "1234abcd-12ab-34cd-56ef-1234567890ab"
	arn := "arn:aws:kms:us-east-1:123456789012:key/" + uuid
	for _, seed := range [][]byte{
		append([]byte{1}, uuid...),
		[]byte(uuid + "\x00rest"),
		append([]byte{byte(len(arn))}, arn...),
		[]byte("\x01\x02\x03" + arn + "\xff"),
		[]byte("junk " + uuid),
		{}, {0}, {200, 'a'},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		id, format := wrappedKeyID(blob)
		if id == "unknown" {
			if format != "unknown" {
				t.Fatalf("id unknown, format %q", format)
			}
			return
		}
		if !bytes.Contains(blob, []byte(id)) {
			t.Fatalf("id %q is not in the blob", id)
		}
		if !utf8.ValidString(id) {
			t.Fatalf("id %q is not UTF-8", id)
		}
		for _, c := range []byte(id) {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("id %q has byte %#x", id, c)
			}
		}
		if !isUUID([]byte(id)) && !isKeyARN([]byte(id)) {
			t.Fatalf("id %q (format %s) is neither a key id nor a key ARN", id, format)
		}
	})
}
