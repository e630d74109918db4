package envelope_test

import (
	"bytes"
	"fmt"

	"github.com/ksse-go/ksse/envelope"
)

// A data key, as KMS GenerateDataKey returns it in plaintext and wrapped,
// bound to one stream, seals records; the same key opens them.
func Example() {
	dataKey := bytes.Repeat([]byte{7}, envelope.KeySize) // from KMS, in real use
	wrapped := []byte("CiphertextBlob from KMS")

	key, err := envelope.NewKey(dataKey, wrapped, []byte("kinesis:orders"))
	if err != nil {
		panic(err)
	}
	env, err := key.Seal(nil, []byte("customer-42"), []byte(`{"total":12}`))
	if err != nil {
		panic(err)
	}
	fmt.Println("envelope:", len(env), "bytes =", envelope.Overhead, "+ partition key", len("customer-42"),
		"+ payload", len(`{"total":12}`), "+ wrapped key", len(wrapped))

	e, rest, err := envelope.Parse(env)
	if err != nil {
		panic(err)
	}
	out, n, err := key.Open(nil, &e)
	if err != nil {
		panic(err)
	}
	fmt.Printf("partition key %q, payload %s, rest %d\n", out[:n], out[n:], len(rest))

	env[len(env)/2] ^= 1 // tamper
	e, _, _ = envelope.Parse(env)
	_, _, err = key.Open(nil, &e)
	fmt.Println(err)
	// Output:
	// envelope: 102 bytes = 56 + partition key 11 + payload 12 + wrapped key 23
	// partition key "customer-42", payload {"total":12}, rest 0
	// envelope: message authentication failed
}

// Envelopes are self-delimiting: a concatenation, as Firehose writes to S3,
// splits without any other framing.
func ExampleParse() {
	key, _ := envelope.NewKey(make([]byte, envelope.KeySize), []byte("wrapped"), []byte("firehose:events"))
	var object []byte
	for _, p := range []string{"first", "second", "third"} {
		object, _ = key.Seal(object, nil, []byte(p))
	}
	for len(object) > 0 {
		e, rest, err := envelope.Parse(object)
		if err != nil {
			panic(err)
		}
		out, _, err := key.Open(nil, &e)
		if err != nil {
			panic(err)
		}
		fmt.Println(string(out))
		object = rest
	}
	// Output:
	// first
	// second
	// third
}
