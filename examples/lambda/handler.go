package main

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
)

// order is the payload of a record of the stream.
type order struct {
	ID     int     `json:"order"`
	Amount float64 `json:"amount"`
}

// handle is the function's own handler: it sees plaintext records, as it
// would on a stream with server-side encryption. It reports orders it
// cannot parse as batch item failures, by sequence number.
func handle(ctx context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, error) {
	var resp events.KinesisEventResponse
	total := map[string]float64{}
	for _, r := range ev.Records {
		var o order
		if err := json.Unmarshal(r.Kinesis.Data, &o); err != nil {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: r.Kinesis.SequenceNumber})
			break // Lambda retries from here: later records would be processed twice
		}
		total[r.Kinesis.PartitionKey] += o.Amount
	}
	for customer, amount := range total {
		slog.InfoContext(ctx, "orders", "customer", customer, "amount", amount)
	}
	return resp, nil
}
