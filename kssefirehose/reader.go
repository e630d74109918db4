package kssefirehose

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"iter"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/record"
)

// ReadError is the error of a [Reader] for one record, or for the bytes at
// Offset. Err is one of:
//   - envelope.ErrMalformed (wrapped, with details): the object cannot be
//     split there. A truncated envelope, trailing data, a delimiter, a
//     record written without encryption or a transformed object do that.
//   - envelope.ErrOpen: the record fails authentication.
//   - a KMS error (*kmsiface.Error) or keycache.ErrNotAllowed: its data key
//     cannot be unwrapped.
//   - the error of the underlying io.Reader.
type ReadError struct {
	// Index is the position of the record in the object, from 0.
	Index int
	// Offset is where the record starts in the object, in bytes.
	Offset int64
	// Err is why (see the type's documentation).
	Err error
}

// Error names the record, its offset and the reason.
func (e *ReadError) Error() string {
	return fmt.Sprintf("kssefirehose: record %d at offset %d: %v", e.Index, e.Offset, e.Err)
}

// Unwrap returns Err.
func (e *ReadError) Unwrap() error { return e.Err }

// Reader splits and decrypts an object of concatenated envelopes, as
// Firehose delivers records to S3, read from an io.Reader.
//
// It splits with an [envelope.Reader], one envelope at a time, whose buffer
// holds the largest envelope read so far (at most about 10 MiB) and grows
// with the bytes actually read, not with the lengths an object claims. Each
// record that Next returns is a new plaintext of its own size.
type Reader struct {
	dec    *record.Decryptor
	stream string
	r      *envelope.Reader
	index  int
	err    error // sticky: io.EOF or a *ReadError that stops splitting
}

// NewReader returns a Reader of the records in r, written by Firehose to
// the delivery stream deliveryStream (name or ARN), that decrypts them with
// dec. Every record must be an envelope: plaintext records cannot be split,
// whatever dec's AllowPlaintext.
func NewReader(dec *record.Decryptor, deliveryStream string, r io.Reader) (*Reader, error) {
	if dec == nil || r == nil {
		return nil, fmt.Errorf("%w: nil Decryptor or io.Reader", record.ErrInvalidInput)
	}
	if err := checkStream(deliveryStream); err != nil {
		return nil, err
	}
	return &Reader{dec: dec, stream: deliveryStream, r: envelope.NewReader(bufio.NewReaderSize(r, 8<<10))}, nil
}

// Next returns the next record, decrypted, in a new Decrypted (whose
// PartitionKey is empty for records sent by this package). At the end of
// the object it returns io.EOF.
//
// A record that fails authentication, or whose data key cannot be
// unwrapped, gives a *ReadError and none of its bytes; since its envelope
// delimited it, Next may be called again and goes on with the next record.
// Bytes that cannot be split (envelope.ErrMalformed) and read errors give
// a *ReadError that Next returns again on every later call.
func (r *Reader) Next(ctx context.Context) (record.Decrypted, error) {
	if r.err != nil {
		return record.Decrypted{}, r.err
	}
	_, offset, err := r.r.Next()
	if err != nil {
		if err != io.EOF {
			err = &ReadError{Index: r.index, Offset: offset, Err: err}
		}
		r.err = err
		return record.Decrypted{}, err
	}
	index := r.index
	r.index++
	_, d, err := r.dec.DecryptFirehose(ctx, nil, r.stream, r.r.Bytes())
	if err != nil {
		return record.Decrypted{}, &ReadError{Index: index, Offset: offset, Err: err}
	}
	return d, nil
}

// All returns an iterator over the records, calling Next until io.EOF. It
// yields each record with a nil error, and each error of Next (a record
// that fails, then possibly the next ones); it stops after an error that
// ends the object. Breaking out of the loop stops reading.
func (r *Reader) All(ctx context.Context) iter.Seq2[record.Decrypted, error] {
	return func(yield func(record.Decrypted, error) bool) {
		for {
			d, err := r.Next(ctx)
			if err == io.EOF {
				return
			}
			if !yield(d, err) || (err != nil && r.err != nil) {
				return
			}
		}
	}
}
