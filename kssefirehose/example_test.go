package kssefirehose_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/kssefirehose"
	"github.com/ksse-go/ksse/record"
)

// Send a batch of encrypted records to a delivery stream, then decrypt the
// object Firehose delivered. Here KMS is the test KMS and Firehose a fake
// that delivers each batch as one object, as Firehose does to S3; a
// program uses kms.NewFromConfig(cfg), firehose.NewFromConfig(cfg), and
// reads the object's Body from s3.GetObject.
func Example() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, err := record.NewEncryptor(kmsClient, keyARN)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	if err != nil {
		panic(err)
	}
	defer dec.Close()

	fh := &fakeFirehose{} // firehose.NewFromConfig(cfg)
	_, err = kssefirehose.PutRecordBatch(ctx, enc, fh, &firehose.PutRecordBatchInput{
		DeliveryStreamName: aws.String("clicks"),
		Records: []types.Record{
			{Data: []byte(`{"page":"/"}` + "\n")},
			{Data: []byte(`{"page":"/cart"}` + "\n")},
		},
	})
	if err != nil {
		panic(err)
	}

	object := bytes.NewReader(fh.objects[0]) // s3.GetObject(...).Body
	r, err := kssefirehose.NewReader(dec, "clicks", object)
	if err != nil {
		panic(err)
	}
	for rec, err := range r.All(ctx) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s", rec.Data)
	}
	// Output:
	// {"page":"/"}
	// {"page":"/cart"}
}

// A Reader reports a record that fails authentication and goes on with the
// next; it stops at bytes that are not envelopes.
func ExampleReader_Next() {
	ctx := context.Background()
	kmsClient := kmstest.New()
	_, keyARN := kmsClient.CreateKey("")
	enc, _ := record.NewEncryptor(kmsClient, keyARN)
	defer enc.Close()
	dec, _ := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	defer dec.Close()

	var object []byte
	for _, s := range []string{"one", "two", "three"} {
		env, err := kssefirehose.Encrypt(ctx, enc, "clicks", []byte(s))
		if err != nil {
			panic(err)
		}
		if s == "two" {
			env[len(env)/2] ^= 1 // tampered with in storage
		}
		object = append(object, env...)
	}
	object = append(object, "junk"...)

	r, _ := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(object))
	for {
		rec, err := r.Next(ctx)
		var re *kssefirehose.ReadError
		switch {
		case err == nil:
			fmt.Printf("record: %s\n", rec.Data)
			continue
		case errors.Is(err, envelope.ErrOpen) && errors.As(err, &re):
			fmt.Printf("record %d: not authentic\n", re.Index)
			continue
		case errors.Is(err, envelope.ErrMalformed) && errors.As(err, &re):
			fmt.Printf("object malformed after record %d\n", re.Index-1)
		}
		break
	}
	// Output:
	// record: one
	// record 1: not authentic
	// record: three
	// object malformed after record 2
}
