package record_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/record"
)

// Encrypt one record for a stream, and decrypt it as a consumer of that
// stream would. The hash key on the wire is the MD5 of the plaintext
// partition key as a decimal number, which routes the record to the shard
// its plaintext would go to. The in-memory KMS of package kmstest stands in for AWS KMS;
// in production, pass a *kms.Client.
func Example() {
	ctx := context.Background()
	kms := kmstest.New()
	_, keyARN := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)

	enc, err := record.NewEncryptor(kms, keyARN)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	r, err := enc.Encrypt(ctx, "orders", "customer-42", []byte(`{"order":1}`))
	if err != nil {
		panic(err)
	}
	e, _, _ := envelope.Parse(r.Data)
	fmt.Println("on the wire: partition key", r.PartitionKey, "hash key", r.ExplicitHashKey)
	fmt.Println("envelope overhead:", len(r.Data)-len("customer-42")-len(`{"order":1}`)-len(e.WrappedKey))

	// The consumer trusts the producer's KMS key, and may name the stream
	// by ARN.
	dec, err := record.NewDecryptor(kms, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{keyARN}
	})
	if err != nil {
		panic(err)
	}
	defer dec.Close()
	d, err := dec.Decrypt(ctx, "arn:aws:kinesis:us-east-1:111122223333:stream/orders", r.Data)
	if err != nil {
		panic(err)
	}
	fmt.Println("decrypted:", d.PartitionKey, string(d.Data), d.KeyARN == keyARN)

	// On another stream the record is not authentic.
	_, err = dec.Decrypt(ctx, "payments", r.Data)
	fmt.Println("on another stream:", errors.Is(err, envelope.ErrOpen))
	// Output:
	// on the wire: partition key ksse hash key 273230869323448032740578469245923174832
	// envelope overhead: 56
	// decrypted: customer-42 {"order":1} true
	// on another stream: true
}

// exampleKinesis stands in for a *kinesis.Client: it keeps what it is sent
// and accepts every record.
type exampleKinesis struct {
	got []types.PutRecordsRequestEntry
}

func (k *exampleKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	k.got = append(k.got, in.Records...)
	out := &kinesis.PutRecordsOutput{FailedRecordCount: aws.Int32(0)}
	for i := range in.Records {
		out.Records = append(out.Records, types.PutRecordsResultEntry{
			ShardId: aws.String("shardId-000000000000"), SequenceNumber: aws.String(fmt.Sprint(len(k.got) - len(in.Records) + i)),
		})
	}
	return out, nil
}

// PutRecords takes the usual PutRecordsInput with plaintext records and
// sends them encrypted. A *kinesis.Client is used the same way.
func ExampleEncryptor_PutRecords() {
	ctx := context.Background()
	kms := kmstest.New()
	_, keyARN := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(kms, keyARN)
	if err != nil {
		panic(err)
	}
	defer enc.Close()

	client := &exampleKinesis{}
	out, err := enc.PutRecords(ctx, client, &kinesis.PutRecordsInput{
		StreamName: aws.String("orders"),
		Records: []types.PutRecordsRequestEntry{
			{PartitionKey: aws.String("customer-42"), Data: []byte("first order")},
			{PartitionKey: aws.String("customer-7"), Data: []byte("second order")},
		},
	})
	if err != nil {
		var be *record.BatchError
		if errors.As(err, &be) {
			fmt.Println("failed records, to retry:", be.Indexes())
		}
		panic(err)
	}
	fmt.Println("failed:", aws.ToInt32(out.FailedRecordCount))
	for _, r := range client.got {
		fmt.Println("sent: partition key", *r.PartitionKey, "hash key", *r.ExplicitHashKey, "envelope", envelope.IsEnvelope(r.Data))
	}
	fmt.Println("KMS calls:", enc.Stats().KMSCalls)
	// Output:
	// failed: 0
	// sent: partition key ksse hash key 273230869323448032740578469245923174832 envelope true
	// sent: partition key ksse hash key 18423839322852854807796920976199280094 envelope true
	// KMS calls: 1
}

// DecryptRecords decrypts the records of a GetRecords output in place, and
// reports the records that fail one by one.
func ExampleDecryptor_DecryptRecords() {
	ctx := context.Background()
	kms := kmstest.New()
	_, keyARN := kms.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(kms, keyARN)
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	dec, err := record.NewDecryptor(kms, func(o *record.DecryptorOptions) {
		o.AllowedKeys = []string{keyARN}
	})
	if err != nil {
		panic(err)
	}
	defer dec.Close()

	// What GetRecords would return: two encrypted records and one written
	// in plaintext by a producer that does not encrypt.
	var records []types.Record
	for _, pk := range []string{"customer-42", "customer-7"} {
		r, err := enc.Encrypt(ctx, "orders", pk, []byte("order of "+pk))
		if err != nil {
			panic(err)
		}
		records = append(records, types.Record{Data: r.Data, PartitionKey: aws.String(r.PartitionKey)})
	}
	records = append(records, types.Record{Data: []byte("plaintext"), PartitionKey: aws.String("legacy")})

	err = dec.DecryptRecords(ctx, "orders", records)
	var be *record.BatchError
	if errors.As(err, &be) {
		for _, f := range be.Failed {
			fmt.Println("record", f.Index, "failed, not encrypted:", errors.Is(f.Err, record.ErrNotEncrypted))
		}
	}
	for _, r := range records[:2] {
		fmt.Println(*r.PartitionKey, string(r.Data), r.EncryptionType)
	}
	// Output:
	// record 2 failed, not encrypted: true
	// customer-42 order of customer-42 KMS
	// customer-7 order of customer-7 KMS
}
