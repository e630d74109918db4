package record

import (
	"errors"
	"fmt"
	"strings"
)

// Caller mistakes. They are reported before anything is sent and before
// any KMS call.
var (
	// ErrInvalidInput is returned for a malformed call. The message says
	// what is wrong:
	//
	//   - a nil client or input, or too many entries;
	//   - an option out of range;
	//   - a partition key that is empty, not valid UTF-8, or longer than
	//     256 Unicode characters.
	ErrInvalidInput = errors.New("record: invalid input")
	// ErrRecordTooLarge is returned for a record that is too large:
	//
	//   - its encrypted size exceeds MaxRecordSize;
	//   - its payload exceeds MaxBytesPerKey;
	//   - or the request exceeds MaxPutRecordsSize.
	ErrRecordTooLarge = errors.New("record: record too large")
	// ErrNotEncrypted is returned by a Decryptor for a record that is not
	// an envelope, unless AllowPlaintext is set.
	ErrNotEncrypted = errors.New("record: record is not encrypted")
)

// RecordError is the failure of one record of a batch.
type RecordError struct {
	// Index is the position of the record in the caller's input.
	Index int
	// Err is why it failed: a Kinesis error code as a *ServiceError, an
	// encryption or decryption error, or a KMS error.
	Err error
}

// Error names the record by index, with the reason.
func (e RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Index, e.Err) }

// Unwrap returns Err.
func (e RecordError) Unwrap() error { return e.Err }

// ServiceError is a per-record failure reported by Kinesis in a PutRecords
// response, such as ProvisionedThroughputExceededException.
type ServiceError struct {
	// Code is the ErrorCode of the record's result ("Unknown" if none).
	Code string
	// Message is its ErrorMessage.
	Message string
}

// Error returns the code and the message.
func (e *ServiceError) Error() string { return e.Code + ": " + e.Message }

// BatchError lists the records of a batch that failed; the others
// succeeded. It matches, with errors.Is and errors.As, the error of every
// failed record.
type BatchError struct {
	// Op is the operation: "PutRecords", "DecryptRecords", …
	Op string
	// Failed lists the failed records, in the order of the caller's input.
	Failed []RecordError
}

// Error names the operation, the number of failed records and the first
// three.
func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d record(s) failed", e.Op, len(e.Failed))
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; …")
			break
		}
		fmt.Fprintf(&b, "; %v", f)
	}
	return b.String()
}

// Unwrap returns the errors of the failed records.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// Indexes returns the positions of the failed records, in order.
func (e *BatchError) Indexes() []int {
	idx := make([]int, len(e.Failed))
	for i, f := range e.Failed {
		idx[i] = f.Index
	}
	return idx
}
