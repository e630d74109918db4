package keycache_test

import (
	"context"
	"errors"
	"fmt"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmstest"
)

// A producer seals records with a cached data key; a consumer unwraps the
// data key carried by each envelope, once, and opens the records. The test
// KMS stands in for AWS KMS.
func Example() {
	ctx := context.Background()
	kms := kmstest.New()
	_, keyARN := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	b := keycache.Binding{
		Context: map[string]string{"kinesis:stream": "orders"},
		AD:      "kinesis:orders",
	}

	producer, err := keycache.NewProducer(kms)
	if err != nil {
		panic(err)
	}
	defer producer.Close()
	var envelopes [][]byte
	for _, payload := range []string{"first", "second", "third"} {
		key, err := producer.Key(ctx, keyARN, b, len(payload))
		if err != nil {
			panic(err)
		}
		env, err := key.Seal(nil, []byte("customer-42"), []byte(payload))
		if err != nil {
			panic(err)
		}
		envelopes = append(envelopes, env)
	}

	consumer, err := keycache.NewConsumer(kms, func(o *keycache.ConsumerOptions) {
		o.AllowedKeyIDs = []string{keyARN}
	})
	if err != nil {
		panic(err)
	}
	defer consumer.Close()
	for _, env := range envelopes {
		e, _, err := envelope.Parse(env)
		if err != nil {
			panic(err)
		}
		key, arn, err := consumer.Key(ctx, e.WrappedKey, b)
		if err != nil {
			panic(err)
		}
		out, n, err := key.Open(nil, &e)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s %s (key ARN matches: %v)\n", out[:n], out[n:], arn == keyARN)
	}
	fmt.Println("GenerateDataKey calls:", producer.Stats().KMSCalls)
	fmt.Println("Decrypt calls:", consumer.Stats().KMSCalls)
	// Output:
	// customer-42 first (key ARN matches: true)
	// customer-42 second (key ARN matches: true)
	// customer-42 third (key ARN matches: true)
	// GenerateDataKey calls: 1
	// Decrypt calls: 1
}

// In strict mode a consumer unwraps only data keys of the KMS keys it
// allows, named by ARN.
func ExampleConsumerOptions_allowedKeyIDs() {
	ctx := context.Background()
	kms := kmstest.New()
	_, trusted := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, backup := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	_, other := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	b := keycache.Binding{Context: map[string]string{"kinesis:stream": "orders"}, AD: "kinesis:orders"}

	producer, err := keycache.NewProducer(kms)
	if err != nil {
		panic(err)
	}
	defer producer.Close()
	consumer, err := keycache.NewConsumer(kms, func(o *keycache.ConsumerOptions) {
		o.AllowedKeyIDs = []string{trusted, backup}
	})
	if err != nil {
		panic(err)
	}
	defer consumer.Close()

	for _, keyARN := range []string{trusted, other} {
		key, err := producer.Key(ctx, keyARN, b, 0)
		if err != nil {
			panic(err)
		}
		_, _, err = consumer.Key(ctx, key.WrappedKey(), b)
		fmt.Println("allowed:", err == nil, "not allowed:", errors.Is(err, keycache.ErrNotAllowed))
	}
	fmt.Println("failures:", consumer.Stats().Failures)
	// Output:
	// allowed: true not allowed: false
	// allowed: false not allowed: true
	// failures: map[NotAllowed:1]
}

// Stats reports how the cache served its callers.
func ExampleProducer_Stats() {
	ctx := context.Background()
	kms := kmstest.New()
	_, keyARN := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	b := keycache.Binding{Context: map[string]string{"kinesis:stream": "orders"}, AD: "kinesis:orders"}
	p, err := keycache.NewProducer(kms)
	if err != nil {
		panic(err)
	}
	defer p.Close()
	for range 100 {
		if _, err := p.Key(ctx, keyARN, b, 1024); err != nil {
			panic(err)
		}
	}
	st := p.Stats()
	fmt.Println("hits:", st.Hits, "misses:", st.Misses, "KMS calls:", st.KMSCalls, "keys held:", st.Entries)
	// Output:
	// hits: 99 misses: 1 KMS calls: 1 keys held: 1
}
