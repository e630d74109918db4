package record

import (
	"fmt"

	"github.com/ksse-go/ksse/internal/streamid"
)

// stream is where records are written: a Kinesis data stream or a Firehose
// delivery stream. Its String is the envelopes' associated data.
type stream = streamid.ID

// kinesisID parses a Kinesis stream name, ARN or consumer ARN.
func kinesisID(nameOrARN string) (stream, error) { return parsed(streamid.Kinesis(nameOrARN)) }

// firehoseID parses a Firehose delivery stream name or ARN.
func firehoseID(nameOrARN string) (stream, error) { return parsed(streamid.Firehose(nameOrARN)) }

func parsed(s stream, err error) (stream, error) {
	if err != nil {
		return stream{}, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return s, nil
}
