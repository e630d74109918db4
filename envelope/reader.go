package envelope

import (
	"errors"
	"fmt"
	"io"
)

// ErrMalformed is matched by the errors of a [Reader] for input that is not
// a sequence of complete envelopes: a truncated envelope, or bytes that do
// not start with a valid version 1 header (trailing data, a delimiter, a
// plaintext record, an unknown version). It concerns the framing only,
// which is public: whether an envelope authenticates is for [Key.Open] to
// say, with [ErrOpen].
var ErrMalformed = errors.New("envelope: not a sequence of envelopes")

// Reader splits a concatenation of envelopes, such as an S3 object that
// Firehose wrote, read from an io.Reader, one envelope at a time.
//
// It reads each header first and checks its lengths against the limits of
// the format before reading the rest, into a buffer that grows with the
// bytes that actually arrive, to the exact size of the envelope: it keeps
// the largest envelope read so far (at most HeaderSize + 10 MiB + 1,054 +
// MaxWrappedKeySize bytes), holds up to about twice that while it grows
// (the old buffer and the new), and allocates no more than about twice the
// bytes the input holds, whatever lengths a header claims.
//
// It reads a header and then the rest of each envelope with separate reads:
// give it a buffered reader (bufio.NewReaderSize) over a file or a network
// stream.
type Reader struct {
	r   io.Reader
	buf []byte
	off int64 // offset of the next envelope
	err error // sticky
}

// minGrow is the first step by which a Reader grows its buffer past the
// header.
const minGrow = 4 << 10

// NewReader returns a Reader of the envelopes in r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r}
}

// Next returns the next envelope and its offset in the input, or io.EOF at
// the end of the input. The envelope aliases a buffer of the Reader that the
// next call reuses.
//
// Input that cannot be split gives an error wrapping [ErrMalformed] that
// says where; a read error is returned as it is. Either one ends the input:
// Next returns it again on every later call.
func (r *Reader) Next() (e Envelope, offset int64, err error) {
	if r.err != nil {
		return Envelope{}, r.off, r.err
	}
	e, err = r.next()
	if err != nil {
		r.err = err
		return Envelope{}, r.off, err
	}
	offset = r.off
	r.off += int64(len(r.buf))
	return e, offset, nil
}

// Bytes returns the bytes of the envelope that the last Next returned,
// which that Envelope aliases: valid until the next call. It returns nil
// before the first envelope and once Next has failed.
func (r *Reader) Bytes() []byte {
	if r.err != nil {
		return nil
	}
	return r.buf
}

func (r *Reader) next() (Envelope, error) {
	var hdr [HeaderSize]byte
	n, err := io.ReadFull(r.r, hdr[:])
	switch {
	case err == io.EOF:
		return Envelope{}, io.EOF
	case err == io.ErrUnexpectedEOF:
		if m := min(n, len(magic)); string(hdr[:m]) != magic[:m] {
			return Envelope{}, fmt.Errorf("%w: no envelope header at byte %d", ErrMalformed, r.off)
		}
		return Envelope{}, fmt.Errorf("%w: %d bytes at byte %d, shorter than an envelope header", ErrMalformed, n, r.off)
	case err != nil:
		return Envelope{}, err
	}
	if string(hdr[:4]) != magic {
		if IsEnvelope(hdr[:]) {
			return Envelope{}, fmt.Errorf("%w: envelope version %d at byte %d, not %d", ErrMalformed, hdr[3], r.off, Version)
		}
		return Envelope{}, fmt.Errorf("%w: no envelope header at byte %d", ErrMalformed, r.off)
	}
	wkLen, bodyLen, ok := headerLengths(hdr[:])
	if !ok {
		return Envelope{}, fmt.Errorf("%w: envelope header with invalid lengths at byte %d", ErrMalformed, r.off)
	}
	size := HeaderSize + bodyLen + wkLen
	r.buf = append(r.buf[:0], hdr[:]...)
	// Grow by doubling, up to the exact size, only as bytes arrive: a
	// header that claims 10 MiB at the end of a short input costs what the
	// input holds.
	for len(r.buf) < size {
		next := min(size, max(2*len(r.buf), minGrow))
		if cap(r.buf) < next {
			r.buf = append(make([]byte, 0, next), r.buf...)
		}
		m, err := io.ReadFull(r.r, r.buf[len(r.buf):next])
		r.buf = r.buf[:len(r.buf)+m]
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return Envelope{}, fmt.Errorf("%w: truncated envelope at byte %d (%d of %d bytes)", ErrMalformed, r.off, len(r.buf), size)
		case err != nil:
			return Envelope{}, err
		}
	}
	e, rest, err := Parse(r.buf)
	if err != nil || len(rest) != 0 {
		// Unreachable: the header was checked as Parse checks it.
		return Envelope{}, fmt.Errorf("%w: invalid envelope at byte %d", ErrMalformed, r.off)
	}
	return e, nil
}
