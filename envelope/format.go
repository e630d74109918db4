package envelope

import (
	"encoding/binary"
	"errors"
)

// Sizes of the fields of a version 1 envelope, in bytes.
const (
	// Version is the envelope version this package writes.
	Version = 1

	// HeaderSize is the size of the header: magic and version (4), wrapped
	// key length (2), body length (4) and salt.
	HeaderSize = 4 + 2 + 4 + SaltSize

	// SaltSize is the size of the per-record salt from which the record key
	// is derived. Record keys stay unique as long as salts do not repeat:
	// among n records of one data key the chance of a repeat is below
	// n²/2¹²⁹ (2⁻⁶⁵ for 2³² records).
	SaltSize = 16

	// NonceSize is the size of the AES-GCM nonce.
	NonceSize = 12

	// TagSize is the size of the AES-GCM authentication tag.
	TagSize = 16

	// KeySize is the size of a data key: AES-256.
	KeySize = 32

	// Overhead is the number of bytes an envelope adds to a record beyond
	// its partition key and the wrapped key: header, the 2-byte partition
	// key length, nonce and tag.
	Overhead = HeaderSize + 2 + NonceSize + TagSize

	// MaxPartitionKeySize is the largest partition key, in bytes, that an
	// envelope holds: 256 Unicode characters of up to 4 bytes each.
	MaxPartitionKeySize = 1024

	// MaxPayloadSize is the largest payload an envelope holds: 10 MiB, the
	// largest record Kinesis accepts.
	MaxPayloadSize = 10 << 20

	// MaxWrappedKeySize is the largest wrapped key an envelope holds, the
	// largest CiphertextBlob that KMS returns.
	MaxWrappedKeySize = 6144

	// minBodySize is the body of an empty partition key and payload.
	minBodySize = 2 + NonceSize + TagSize
	// maxBodySize is the body of the largest partition key and payload.
	maxBodySize = 2 + MaxPartitionKeySize + NonceSize + MaxPayloadSize + TagSize
)

// magic is the first four bytes of a version 1 envelope: 0xE5, "KS", and the
// version. The first three bytes are the same for every version.
const magic = "\xe5KS\x01"

// ErrOpen is returned for every envelope that fails to parse or to
// authenticate. It deliberately does not say why.
var ErrOpen = errors.New("envelope: message authentication failed")

// Envelope is a parsed envelope. Its fields are slices of the parsed input.
type Envelope struct {
	// Salt is the per-record salt (SaltSize bytes).
	Salt []byte
	// Body is the sealed partition key, the nonce and the ciphertext of
	// the payload with its tag. Where one ends and the next begins is only
	// known to the holder of the key.
	Body []byte
	// WrappedKey is the KMS CiphertextBlob of the data key.
	WrappedKey []byte
}

// IsEnvelope reports whether b starts with the envelope magic, of any
// version. It does not validate anything else: a record for which it
// returns false is certainly not an envelope, and one for which it returns
// true must still be parsed and opened.
func IsEnvelope(b []byte) bool {
	return len(b) >= 3 && string(b[:3]) == magic[:3]
}

// Parse reads one envelope from the start of b and returns it with the bytes
// that follow it, so that a concatenation of envelopes can be split by
// calling Parse until rest is empty. The returned envelope aliases b. Parse
// checks every length against its limit before using it and allocates
// nothing. It returns [ErrOpen] if b does not start with a well-formed
// version 1 envelope.
func Parse(b []byte) (e Envelope, rest []byte, err error) {
	if len(b) < HeaderSize || string(b[:4]) != magic {
		return Envelope{}, nil, ErrOpen
	}
	wkLen, bodyLen, ok := headerLengths(b)
	if !ok {
		return Envelope{}, nil, ErrOpen
	}
	bodyEnd := HeaderSize + bodyLen
	size := bodyEnd + wkLen
	if len(b) < size {
		return Envelope{}, nil, ErrOpen
	}
	e = Envelope{
		Salt:       b[10:HeaderSize:HeaderSize],
		Body:       b[HeaderSize:bodyEnd:bodyEnd],
		WrappedKey: b[bodyEnd:size:size],
	}
	return e, b[size:], nil
}

// headerLengths returns the wrapped key and body lengths of the header that
// b starts with, and whether both are within the limits of the format
// (FORMAT.md, "Parsing rules"). b holds at least HeaderSize bytes.
func headerLengths(b []byte) (wkLen, bodyLen int, ok bool) {
	wk := binary.BigEndian.Uint16(b[4:6])
	body := binary.BigEndian.Uint32(b[6:10])
	if wk < 1 || wk > MaxWrappedKeySize || body < minBodySize || body > maxBodySize {
		return 0, 0, false
	}
	return int(wk), int(body), true
}

// Size returns the number of bytes [Envelope.AppendBinary] writes.
func (e *Envelope) Size() int {
	return HeaderSize + len(e.Body) + len(e.WrappedKey)
}

// Valid reports whether every field of e has a size that [Parse] accepts,
// as it is for every parsed envelope. [Key.Open] fails with [ErrOpen] for
// an envelope that is not valid; code that looks up a key by
// e.WrappedKey before opening an envelope it did not parse should check
// Valid first.
func (e *Envelope) Valid() bool {
	return len(e.Salt) == SaltSize &&
		len(e.WrappedKey) >= 1 && len(e.WrappedKey) <= MaxWrappedKeySize &&
		len(e.Body) >= minBodySize && len(e.Body) <= maxBodySize
}

// AppendBinary appends the encoding of e to b. It returns an error if a
// field does not have a valid size. For a parsed envelope it writes exactly
// the bytes that were parsed.
func (e *Envelope) AppendBinary(b []byte) ([]byte, error) {
	if !e.Valid() {
		return b, errors.New("envelope: invalid field size")
	}
	b = appendHeader(b, len(e.WrappedKey), len(e.Body))
	b = append(b, e.Salt...)
	b = append(b, e.Body...)
	return append(b, e.WrappedKey...), nil
}

// MarshalBinary returns the encoding of e.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, e.Size()))
}

// appendHeader appends magic, version and the two lengths: the header
// without its salt.
func appendHeader(b []byte, wkLen, bodyLen int) []byte {
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, uint16(wkLen))
	return binary.BigEndian.AppendUint32(b, uint32(bodyLen))
}
