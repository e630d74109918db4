package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ksse-go/ksse/envelope"
)

// maxBodyLength is the largest body length of a version 1 envelope
// (FORMAT.md, Parsing rules): sealed partition key, nonce, payload, tag.
const maxBodyLength = 2 + envelope.MaxPartitionKeySize + envelope.NonceSize + envelope.MaxPayloadSize + envelope.TagSize

// magic is how every envelope starts, whatever its version (FORMAT.md).
var magic = []byte{0xE5, 'K', 'S'}

// errMalformed is the error of a splitter for input that is not a sequence
// of complete envelopes. After it the rest of the input cannot be split.
var errMalformed = errors.New("not a sequence of ksse envelopes")

// splitter reads a concatenation of envelopes, one at a time, with bounded
// memory (one envelope).
type splitter struct {
	r   *bufio.Reader
	off int64 // offset of the next envelope
	buf []byte
}

func newSplitter(r io.Reader) *splitter {
	return &splitter{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next envelope and its offset in the input, or io.EOF at
// the end of the input. The envelope aliases a buffer that the next call
// reuses. Any other error wraps errMalformed (or is a read error) and ends
// the input.
func (s *splitter) next() (envelope.Envelope, int64, error) {
	off := s.off
	var hdr [envelope.HeaderSize]byte
	n, err := io.ReadFull(s.r, hdr[:])
	switch {
	case err == io.EOF:
		return envelope.Envelope{}, off, io.EOF
	case err == io.ErrUnexpectedEOF:
		if m := min(n, len(magic)); !bytes.Equal(hdr[:m], magic[:m]) {
			return envelope.Envelope{}, off, fmt.Errorf("%w: no envelope header at byte %d", errMalformed, off)
		}
		return envelope.Envelope{}, off, fmt.Errorf("%w: %d bytes after the last complete envelope", errMalformed, n)
	case err != nil:
		return envelope.Envelope{}, off, err
	}
	if !envelope.IsEnvelope(hdr[:]) {
		return envelope.Envelope{}, off, fmt.Errorf("%w: no envelope header at byte %d", errMalformed, off)
	}
	// Bound both lengths before allocating (FORMAT.md, Parsing rules);
	// Parse checks everything again.
	wrappedKeyLen := int(binary.BigEndian.Uint16(hdr[4:6]))
	bodyLen := int64(binary.BigEndian.Uint32(hdr[6:10]))
	if hdr[3] != envelope.Version || wrappedKeyLen < 1 || wrappedKeyLen > envelope.MaxWrappedKeySize || bodyLen > maxBodyLength {
		return envelope.Envelope{}, off, fmt.Errorf("%w: invalid envelope header at byte %d", errMalformed, off)
	}
	size := envelope.HeaderSize + int(bodyLen) + wrappedKeyLen
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	s.buf = s.buf[:size]
	copy(s.buf, hdr[:])
	if m, err := io.ReadFull(s.r, s.buf[envelope.HeaderSize:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return envelope.Envelope{}, off, fmt.Errorf("%w: truncated envelope at byte %d (%d of %d bytes)", errMalformed, off, envelope.HeaderSize+m, size)
		}
		return envelope.Envelope{}, off, err
	}
	e, rest, err := envelope.Parse(s.buf)
	if err != nil || len(rest) != 0 {
		return envelope.Envelope{}, off, fmt.Errorf("%w: invalid envelope at byte %d", errMalformed, off)
	}
	s.off += int64(size)
	return e, off, nil
}
