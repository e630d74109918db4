package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/kmstest"
	"github.com/ksse-go/ksse/ksselambda"
	"github.com/ksse-go/ksse/record"
)

// TestHandler runs the function's handler, wrapped as main wraps it, on an
// event of encrypted records built with the test KMS.
func TestHandler(t *testing.T) {
	ctx := context.Background()
	k := kmstest.New()
	_, keyARN := k.CreateKey("")
	enc, err := record.NewEncryptor(k, keyARN)
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(k)
	require.NoError(t, err)
	defer dec.Close()

	const stream = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"
	event := func(payloads ...string) events.KinesisEvent {
		var ev events.KinesisEvent
		for i, p := range payloads {
			r, err := enc.Encrypt(ctx, stream, "customer-42", []byte(p))
			require.NoError(t, err)
			if p == "forged" {
				r.Data = []byte(p)
			}
			seq := fmt.Sprint(1000 + i)
			ev.Records = append(ev.Records, events.KinesisEventRecord{EventID: "shardId-000000000000:" + seq, EventSourceArn: stream,
				Kinesis: events.KinesisRecord{Data: r.Data, PartitionKey: r.PartitionKey, SequenceNumber: seq}})
		}
		return ev
	}
	handler := ksselambda.Handler(dec, handle)

	resp, err := handler(ctx, event(`{"order":1,"amount":2.5}`, `{"order":2,"amount":1}`))
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)

	// A record the handler cannot parse, and one that is not authentic:
	// the lowest is where Lambda starts again.
	resp, err = handler(ctx, event(`{"order":1,"amount":2.5}`, `not json`, "forged"))
	require.NoError(t, err)
	require.Equal(t, []events.KinesisBatchItemFailure{{ItemIdentifier: "1001"}, {ItemIdentifier: "1002"}}, resp.BatchItemFailures)

	resp, err = handler(ctx, event("forged", `{"order":1,"amount":2.5}`))
	require.NoError(t, err)
	require.Equal(t, []events.KinesisBatchItemFailure{{ItemIdentifier: "1000"}}, resp.BatchItemFailures)
}
