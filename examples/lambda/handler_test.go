package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/ksselambda"
	"github.com/ksse-go/ksse/record"
)

// TestHandler runs the function's handler, wrapped as main wraps it (a
// Decryptor that trusts one key), on events of records built with the test
// KMS.
func TestHandler(t *testing.T) {
	ctx := context.Background()
	k := kmstest.New()
	_, keyARN := k.CreateKey("")
	_, otherARN := k.CreateKey("")
	enc, err := record.NewEncryptor(k, keyARN)
	require.NoError(t, err)
	defer enc.Close()
	other, err := record.NewEncryptor(k, otherARN) // a key the function does not trust
	require.NoError(t, err)
	defer other.Close()
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} })
	require.NoError(t, err)
	defer dec.Close()

	const stream = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"
	// event builds an event of one shard; a payload starting with
	// "forged" is sent as is, one starting with "other" is encrypted
	// under the other key.
	event := func(payloads ...string) events.KinesisEvent {
		var ev events.KinesisEvent
		for i, p := range payloads {
			e := enc
			if strings.HasPrefix(p, "other") {
				e = other
			}
			r, err := e.Encrypt(ctx, stream, "customer-42", []byte(p))
			require.NoError(t, err)
			if strings.HasPrefix(p, "forged") {
				r.Data = []byte(p)
			}
			seq := fmt.Sprint(1000 + i)
			ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq, EventSourceArn: stream,
				Kinesis: events.KinesisRecord{Data: r.Data, PartitionKey: r.PartitionKey, SequenceNumber: seq}})
		}
		return ev
	}
	var seen []string // the payloads handle was given
	handler := ksselambda.Handler(dec, func(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
		for _, r := range ev.Records {
			require.Equal(t, "customer-42", r.Kinesis.PartitionKey)
			require.Equal(t, "KMS", r.Kinesis.EncryptionType)
			seen = append(seen, string(r.Kinesis.Data))
		}
		return handle(ctx, ev)
	})

	resp, err := handler(ctx, event(`{"order":1,"amount":2.5}`, `{"order":2,"amount":1}`))
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)
	require.Equal(t, []string{`{"order":1,"amount":2.5}`, `{"order":2,"amount":1}`}, seen)

	// A record handle cannot parse: handle reports it, Lambda starts
	// again from there.
	seen = nil
	resp, err = handler(ctx, event(`{"order":1,"amount":2.5}`, `not json`, `{"order":3,"amount":1}`))
	require.NoError(t, err)
	require.Equal(t, []events.KinesisBatchItemFailure{{ItemIdentifier: "1001"}}, resp.BatchItemFailures)
	require.Equal(t, []string{`{"order":1,"amount":2.5}`, `not json`, `{"order":3,"amount":1}`}, seen)

	// A forged record, and a genuine one under a key the function does
	// not trust, never reach handle. (Whether ksselambda reports them for
	// redelivery or sets them aside is its policy, tested in its package.)
	for _, bad := range []string{"forged record", `other {"order":9,"amount":100}`} {
		seen = nil
		_, err = handler(ctx, event(`{"order":1,"amount":2.5}`, bad))
		require.NoError(t, err)
		require.Equal(t, []string{`{"order":1,"amount":2.5}`}, seen, bad)
	}
}
