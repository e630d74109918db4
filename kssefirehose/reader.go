package kssefirehose

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/record"
)

// ErrMalformed is matched by the error of a [Reader] for bytes that cannot be
// split into envelopes: a truncated envelope, or bytes that do not start
// with a valid envelope header (trailing data, a delimiter, a record written
// without encryption, a transformed object).
var ErrMalformed = errors.New("kssefirehose: not a sequence of ksse envelopes")

// ReadError is the error of a [Reader] for one record, or for the bytes at
// Offset. Err is ErrMalformed (wrapped, with details) when the object cannot
// be split there; envelope.ErrOpen when a record fails authentication; a
// KMS error (*kmsiface.Error) or keycache.ErrNotAllowed when its data key
// cannot be unwrapped; or the error of the underlying io.Reader.
type ReadError struct {
	// Index is the position of the record in the object, from 0.
	Index int
	// Offset is where the record starts in the object, in bytes.
	Offset int64
	Err    error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("kssefirehose: record %d at offset %d: %v", e.Index, e.Offset, e.Err)
}

// Unwrap returns Err.
func (e *ReadError) Unwrap() error { return e.Err }

// The bounds of the header's lengths (FORMAT.md, "Parsing rules").
const (
	minBodySize = 2 + envelope.NonceSize + envelope.TagSize
	maxBodySize = 2 + envelope.MaxPartitionKeySize + envelope.NonceSize + envelope.MaxPayloadSize + envelope.TagSize
)

// magic is the first four bytes of a version 1 envelope.
var magic = [4]byte{0xE5, 'K', 'S', envelope.Version}

// Reader splits and decrypts an object of concatenated envelopes, as
// Firehose delivers records to S3, read from an io.Reader.
//
// It reads one envelope at a time: the header first, whose lengths it
// checks against the limits of the format before reading the rest, so its
// memory is bounded by the largest envelope (about 10 MiB), and grows with
// the bytes actually read, not with the lengths an object claims.
type Reader struct {
	dec    *record.Decryptor
	stream record.Stream
	r      io.Reader
	buf    bytes.Buffer
	index  int
	offset int64
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
	s, err := record.FirehoseStream(deliveryStream)
	if err != nil {
		return nil, err
	}
	return &Reader{dec: dec, stream: s, r: r}, nil
}

// Next returns the next record, decrypted, in a new Decrypted (whose
// PartitionKey is empty for records sent by this package). At the end of
// the object it returns io.EOF.
//
// A record that fails authentication, or whose data key cannot be
// unwrapped, gives a *ReadError and none of its bytes; since its envelope
// delimited it, Next may be called again and goes on with the next record.
// Bytes that cannot be split (see ErrMalformed) and read errors give a
// *ReadError that Next returns again on every later call.
func (r *Reader) Next(ctx context.Context) (record.Decrypted, error) {
	if r.err != nil {
		return record.Decrypted{}, r.err
	}
	e, size, err := r.readEnvelope()
	if err != nil {
		if err != io.EOF {
			err = &ReadError{Index: r.index, Offset: r.offset, Err: err}
		}
		r.err = err
		return record.Decrypted{}, err
	}
	index, offset := r.index, r.offset
	r.index++
	r.offset += int64(size)
	out, n, keyARN, err := r.dec.Open(ctx, nil, r.stream, &e)
	if err != nil {
		return record.Decrypted{}, &ReadError{Index: index, Offset: offset, Err: err}
	}
	return record.Decrypted{PartitionKey: string(out[:n]), Data: out[n:], Encrypted: true, KeyARN: keyARN}, nil
}

// readEnvelope reads and parses one envelope into r.buf. It returns io.EOF
// at a clean end of input.
func (r *Reader) readEnvelope() (envelope.Envelope, int, error) {
	var hdr [envelope.HeaderSize]byte
	n, err := io.ReadFull(r.r, hdr[:])
	switch {
	case err == io.EOF:
		return envelope.Envelope{}, 0, io.EOF
	case err == io.ErrUnexpectedEOF:
		return envelope.Envelope{}, 0, fmt.Errorf("%w: %d trailing bytes, shorter than an envelope header", ErrMalformed, n)
	case err != nil:
		return envelope.Envelope{}, 0, err
	}
	if [4]byte(hdr[:4]) != magic {
		return envelope.Envelope{}, 0, fmt.Errorf("%w: no envelope header", ErrMalformed)
	}
	wrappedKeyLen := int(binary.BigEndian.Uint16(hdr[4:6]))
	bodyLen := int64(binary.BigEndian.Uint32(hdr[6:10]))
	if wrappedKeyLen < 1 || wrappedKeyLen > envelope.MaxWrappedKeySize || bodyLen < minBodySize || bodyLen > maxBodySize {
		return envelope.Envelope{}, 0, fmt.Errorf("%w: envelope header with invalid lengths", ErrMalformed)
	}
	rest := bodyLen + int64(wrappedKeyLen)
	r.buf.Reset()
	r.buf.Write(hdr[:])
	// ReadFrom grows the buffer with the bytes that arrive, so a header that
	// claims 10 MiB on a short object allocates what the object holds.
	m, err := io.CopyN(&r.buf, r.r, rest)
	switch {
	case err == io.EOF:
		return envelope.Envelope{}, 0, fmt.Errorf("%w: truncated envelope (%d of %d bytes)", ErrMalformed, envelope.HeaderSize+m, envelope.HeaderSize+rest)
	case err != nil:
		return envelope.Envelope{}, 0, err
	}
	e, tail, err := envelope.Parse(r.buf.Bytes())
	if err != nil || len(tail) != 0 {
		return envelope.Envelope{}, 0, fmt.Errorf("%w: invalid envelope", ErrMalformed)
	}
	return e, r.buf.Len(), nil
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
