package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ksse-go/ksse/internal/streamid"
)

// jsonRecord is one line of the output of tail and decrypt.
type jsonRecord struct {
	Index          *int   `json:"index,omitempty"`
	ShardID        string `json:"shardId,omitempty"`
	SequenceNumber string `json:"sequenceNumber,omitempty"`
	PartitionKey   string `json:"partitionKey,omitempty"`
	Data           string `json:"data"`
	DataEncoding   string `json:"dataEncoding,omitempty"`
	EncryptionType string `json:"encryptionType"`
}

// setData sets the Data and DataEncoding of r for the payload b.
func (r *jsonRecord) setData(b []byte) {
	if utf8.Valid(b) {
		r.Data, r.DataEncoding = string(b), ""
		return
	}
	r.Data, r.DataEncoding = base64.StdEncoding.EncodeToString(b), "base64"
}

// recordWriter writes JSON lines.
type recordWriter struct{ enc *json.Encoder }

func newRecordWriter(w io.Writer) *recordWriter {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &recordWriter{enc: enc}
}

func (w *recordWriter) write(r *jsonRecord) error { return w.enc.Encode(r) }

// streamRef returns the StreamName or StreamARN field value of a Kinesis
// request for the --stream argument s, which is a name or an ARN.
func streamRef(s string) (name, arn *string) {
	if strings.HasPrefix(s, "arn:") {
		return nil, aws.String(s)
	}
	return aws.String(s), nil
}

// kinesisStreamArg validates the --stream argument of a Kinesis command.
func kinesisStreamArg(s string) (streamid.ID, error) {
	if s == "" {
		return streamid.ID{}, usagef("--stream is required")
	}
	st, err := streamid.Kinesis(s)
	if err != nil {
		return streamid.ID{}, usagef("--stream %q: not a valid Kinesis stream name or ARN", s)
	}
	return st, nil
}
