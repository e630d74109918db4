package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"
	"sync/atomic"
)

// The HKDF info labels of version 1. See FORMAT.md, "Keys".
const (
	labelStreamKey = "ksse v1 stream key"
	labelRecordKey = "ksse v1 record key"
)

// ErrKeyDestroyed is returned by [Key.Seal] and [Key.Open] after
// [Key.Destroy].
var ErrKeyDestroyed = errors.New("envelope: key destroyed")

// hmacStateSize is the size of a marshaled SHA-256 state.
const hmacStateSize = 108

// Key is one data key bound to one stream identity: the state from which
// record keys are derived. It holds no plaintext data key, only the derived
// stream key: precomputed as the two HMAC-SHA256 states of HKDF-Expand, or
// as it is in FIPS 140-3 mode (see the package documentation).
//
// A Key is safe for concurrent use by multiple goroutines.
//
// A Key prints as "envelope.Key{REDACTED}" with every fmt verb and in
// log/slog output: it never shows its key material.
type Key struct {
	wrapped []byte
	// m is the key material, set once by newKey. It is held as an
	// atomic.Pointer, an unsafe.Pointer inside, because fmt prints that as an
	// address with every verb: a copy of a Key, which fmt prints field by
	// field without its methods, shows no key material. (fmt prints the
	// target of an ordinary pointer field for verbs such as %s.)
	m atomic.Pointer[material]
	// fips is fipsMode when the key was made (tests make both kinds).
	fips      bool
	destroyed atomic.Bool
}

// material is the key material of a Key.
type material struct {
	// inner and outer are the SHA-256 states after absorbing the stream key
	// XOR ipad and XOR opad: HMAC(stream key, ·) without the two key blocks.
	// Not used in FIPS mode.
	inner, outer []byte
	// prk is the stream key in FIPS mode, for crypto/hkdf.Expand.
	prk []byte
}

// fipsMode selects, for the keys that NewKey makes, the services of the
// Go Cryptographic Module for every step of a record, as FIPS 140-3 requires:
// crypto/hkdf.Expand for the record key, cipher.NewCTR for the partition
// key stream, and cipher.NewGCMWithRandomNonce for the payload. Otherwise
// Seal and Open compute the same functions faster: HKDF-Expand from
// precomputed HMAC states, AES-CTR block by block, and AES-GCM with a nonce
// drawn with the salt. It is set in FIPS 140-3 mode (GODEBUG=fips140=on or
// only).
var fipsMode = fips140.Enabled()

// NewKey derives the stream key of a data key for the associated data ad
// (the stream identity, see FORMAT.md) and returns it as a Key. dataKey is
// the plaintext of a KMS data key (KeySize bytes) and wrappedKey its
// CiphertextBlob (1 to MaxWrappedKeySize bytes). NewKey copies what it keeps;
// the caller should clear dataKey when it no longer needs it.
func NewKey(dataKey, wrappedKey, ad []byte) (*Key, error) {
	return newKey(dataKey, wrappedKey, ad, fipsMode)
}

func newKey(dataKey, wrappedKey, ad []byte, fips bool) (*Key, error) {
	if len(dataKey) != KeySize {
		return nil, fmt.Errorf("envelope: data key is %d bytes, want %d", len(dataKey), KeySize)
	}
	if len(wrappedKey) < 1 || len(wrappedKey) > MaxWrappedKeySize {
		return nil, fmt.Errorf("envelope: wrapped key is %d bytes, want 1 to %d", len(wrappedKey), MaxWrappedKeySize)
	}
	streamKey, err := hkdf.Key(sha256.New, dataKey, wrappedKey, labelStreamKey+string(ad), sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("envelope: deriving the stream key: %w", err)
	}
	defer clear(streamKey)
	k := &Key{wrapped: append([]byte(nil), wrappedKey...), fips: fips}
	m := new(material)
	var st []byte
	if k.fips {
		st = append(make([]byte, 0, sha256.Size), streamKey...)
		m.prk = st
	} else {
		st = make([]byte, 0, 2*hmacStateSize)
		st = appendHMACState(st, streamKey, 0x36)
		st = appendHMACState(st, streamKey, 0x5c)
		m.inner, m.outer = st[:hmacStateSize:hmacStateSize], st[hmacStateSize:]
	}
	k.m.Store(m)
	// The key material never changes while k is reachable, so Seal and Open
	// read it without locking; it is cleared once k is collected.
	runtime.AddCleanup(k, func(st []byte) { clear(st) }, st)
	return k, nil
}

// appendHMACState appends the marshaled SHA-256 state after one block of
// key XOR pad, the precomputation that HMAC (RFC 2104) allows. It leaves
// no copy of it elsewhere.
func appendHMACState(dst, key []byte, pad byte) []byte {
	var block [sha256.BlockSize]byte
	copy(block[:], key)
	for i := range block {
		block[i] ^= pad
	}
	h := sha256.New()
	h.Write(block[:])
	clear(block[:])
	defer h.Reset()
	st, err := h.(encoding.BinaryAppender).AppendBinary(dst)
	if err != nil || len(st) != len(dst)+hmacStateSize || cap(st) != cap(dst) {
		panic("envelope: unexpected SHA-256 state encoding")
	}
	return st
}

// WrappedKey returns the wrapped data key that every envelope of k carries.
// The caller must not modify it.
func (k *Key) WrappedKey() []byte { return k.wrapped }

// Destroy makes k unusable: Seal and Open fail with [ErrKeyDestroyed] once
// it has returned (a call already past its check completes normally). The
// key material of k is cleared when k is garbage collected, that is once no
// goroutine can be using it, whether or not Destroy was called. What the
// standard library allocates per record is left to the garbage collector:
// the AES key schedules of record keys and, in FIPS mode, the HMAC state of
// crypto/hkdf.Expand, which is as sensitive as the stream key.
func (k *Key) Destroy() {
	k.destroyed.Store(true)
}

// scratch is per-call working memory, pooled so that Seal and Open do not
// allocate it.
type scratch struct {
	inner, outer hash.Hash
	ctr          [1]byte
	label        [len(labelRecordKey)]byte // the HKDF label, copied per record
	sum          [sha256.Size]byte
	okm          [sha256.Size]byte // the record key, while it is derived
	ctrBlock     [aes.BlockSize]byte
	pkLen        [2]byte // the decrypted partition key length, in Open
	stream       [aes.BlockSize]byte
	pk           []byte

	// aad holds the additional data of a record (header and sealed
	// partition key): crypto/cipher does not allow it to overlap the
	// output, where Seal writes it first.
	aad [maxAADSize]byte
	// rnd holds the salt and nonce of the record being sealed. They are
	// drawn from crypto/rand at each Seal, never ahead: a pooled stock of
	// random bytes would be duplicated by a fork or a VM snapshot and
	// repeat salts and nonces under a cached data key.
	rnd [SaltSize + NonceSize]byte
}

// maxAADSize is the largest additional data of a record.
const maxAADSize = HeaderSize + 2 + MaxPartitionKeySize

var scratchPool = sync.Pool{New: func() any {
	return &scratch{inner: sha256.New(), outer: sha256.New()}
}}

// expand extends okm, which holds the first blocks of
// HKDF-Expand(stream key, label || salt, ·), by whole blocks until it holds
// at least n bytes. It uses the precomputed HMAC states. Seal and Open pass
// labelRecordKey; tests may pass a shorter label.
func (k *Key) expand(s *scratch, label string, salt, okm []byte, n int) ([]byte, error) {
	if len(label) > len(s.label) {
		panic("envelope: HKDF label too long")
	}
	info := s.label[:copy(s.label[:], label)]
	m := k.m.Load()
	inner := s.inner.(encoding.BinaryUnmarshaler)
	outer := s.outer.(encoding.BinaryUnmarshaler)
	// T(i) = HMAC(PRK, T(i-1) || info || i), T(0) empty.
	for i := len(okm)/sha256.Size + 1; len(okm) < n; i++ {
		if inner.UnmarshalBinary(m.inner) != nil || outer.UnmarshalBinary(m.outer) != nil {
			panic("envelope: corrupt HMAC state")
		}
		if i > 1 {
			s.inner.Write(okm[len(okm)-sha256.Size:])
		}
		s.inner.Write(info)
		s.inner.Write(salt)
		s.ctr[0] = byte(i)
		s.inner.Write(s.ctr[:])
		s.outer.Write(s.inner.Sum(s.sum[:0]))
		okm = s.outer.Sum(okm)
	}
	// The digests still hold the stream key's HMAC states (the inputs are
	// shorter than a block): reset them before the scratch goes back to the
	// pool.
	s.inner.Reset()
	s.outer.Reset()
	clear(s.sum[:])
	return okm, nil
}

// recordKey derives the record key for salt and returns AES-256 keyed with
// it, and AES-256-GCM over that block: with random nonces (nonce ||
// ciphertext in and out) in FIPS mode, else with explicit nonces (drawn by
// Seal with the salt, in one crypto/rand call per record). Both write the
// same format: a random nonce in front of the ciphertext.
func (k *Key) recordKey(s *scratch, salt []byte) (cipher.Block, cipher.AEAD, error) {
	var okm []byte
	var err error
	if k.fips {
		okm, err = hkdf.Expand(sha256.New, k.m.Load().prk, labelRecordKey+string(salt), sha256.Size)
	} else {
		okm, err = k.expand(s, labelRecordKey, salt, s.okm[:0], sha256.Size)
	}
	if err != nil {
		return nil, nil, err
	}
	b, err := aes.NewCipher(okm[:sha256.Size])
	clear(okm)
	if err != nil {
		return nil, nil, err
	}
	var aead cipher.AEAD
	if k.fips {
		aead, err = cipher.NewGCMWithRandomNonce(b)
	} else {
		aead, err = cipher.NewGCM(b)
	}
	if err != nil {
		return nil, nil, err
	}
	return b, aead, nil
}

// pkCounter is the first 12 bytes of the AES-CTR counter blocks of the
// partition key stream. AES-GCM uses the counter blocks nonce || i (i ≥ 1)
// and the zero block, so the two uses of the record key never share an AES
// input as long as the nonce is not twelve 0xFF bytes, which Seal ensures
// and Open checks.
var pkCounter = [12]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// xorPartitionKeyStream XORs buf, at most 2 + MaxPartitionKeySize bytes,
// with AES-CTR under b from the counter block pkCounter || 0x00000000. With
// fips it uses cipher.NewCTR, which computes the same stream: the counter
// runs over 65 blocks at most, so its last 32 bits never wrap.
func xorPartitionKeyStream(s *scratch, b cipher.Block, buf []byte, fips bool) {
	if len(buf) > 2+MaxPartitionKeySize {
		panic("envelope: partition key stream too long")
	}
	copy(s.ctrBlock[:12], pkCounter[:])
	if fips {
		clear(s.ctrBlock[12:])
		cipher.NewCTR(b, s.ctrBlock[:]).XORKeyStream(buf, buf)
		return
	}
	for i := uint32(0); len(buf) > 0; i++ {
		binary.BigEndian.PutUint32(s.ctrBlock[12:], i)
		b.Encrypt(s.stream[:], s.ctrBlock[:])
		n := subtle.XORBytes(buf, buf, s.stream[:])
		buf = buf[n:]
	}
	clear(s.stream[:])
}

// SealedSize returns the size of the envelope that [Key.Seal] writes for a
// partition key and payload of the given sizes under k.
func (k *Key) SealedSize(partitionKeyLen, payloadLen int) int {
	return Overhead + partitionKeyLen + payloadLen + len(k.wrapped)
}

// Seal encrypts and authenticates partitionKey and payload into a new
// envelope, appends it to dst and returns the updated slice. It draws a
// fresh salt and nonce from crypto/rand, so sealing the same record twice
// gives different envelopes. The payload is read once and never copied.
//
// The remaining capacity of dst must not overlap partitionKey or payload.
// To avoid allocations, give dst a capacity of len(dst) +
// k.SealedSize(len(partitionKey), len(payload)).
//
// Seal returns an error, and dst unchanged, if the partition key is longer
// than MaxPartitionKeySize, the payload larger than MaxPayloadSize, or k was
// destroyed.
func (k *Key) Seal(dst, partitionKey, payload []byte) ([]byte, error) {
	return k.seal(dst, partitionKey, payload, nil)
}

// seal is Seal. If wrap is not nil, the AEAD of each record is wrap(aead):
// a seam for tests that check the arguments Seal passes to it.
func (k *Key) seal(dst, partitionKey, payload []byte, wrap func(cipher.AEAD) cipher.AEAD) ([]byte, error) {
	if len(partitionKey) > MaxPartitionKeySize {
		return dst, fmt.Errorf("envelope: partition key is %d bytes, more than %d", len(partitionKey), MaxPartitionKeySize)
	}
	if len(payload) > MaxPayloadSize {
		return dst, fmt.Errorf("envelope: payload is %d bytes, more than %d", len(payload), MaxPayloadSize)
	}
	if k.destroyed.Load() {
		return dst, ErrKeyDestroyed
	}
	spkLen := 2 + len(partitionKey)
	bodyLen := spkLen + NonceSize + len(payload) + TagSize
	ret, out := sliceForAppend(dst, HeaderSize+bodyLen+len(k.wrapped))
	if anyOverlap(out, partitionKey) || anyOverlap(out, payload) {
		panic("envelope: invalid buffer overlap")
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)

	for {
		// The salt and the nonce, drawn now in one crypto/rand call. In
		// FIPS mode the GCM draws its own nonce.
		salt, nonce := s.rnd[:SaltSize], s.rnd[SaltSize:]
		if k.fips {
			rand.Read(salt)
		} else {
			rand.Read(s.rnd[:])
		}
		prefix := appendHeader(out[:0], len(k.wrapped), bodyLen)
		prefix = append(prefix, salt...)

		b, aead, err := k.recordKey(s, salt)
		if err != nil {
			clear(out)
			return dst, err
		}
		// The sealed partition key: (uint16 length || partition key) XOR
		// the partition key stream.
		prefix = binary.BigEndian.AppendUint16(prefix, uint16(len(partitionKey)))
		prefix = append(prefix, partitionKey...)
		xorPartitionKeyStream(s, b, prefix[HeaderSize:], k.fips)
		// The prefix is the additional data. GCM gets a copy: it writes
		// nonce || ciphertext || tag after the prefix, in the same buffer.
		aad := s.aad[:copy(s.aad[:], prefix)]
		if wrap != nil {
			aead = wrap(aead)
		}
		if k.fips {
			aead.Seal(prefix, nil, payload, aad)
		} else {
			aead.Seal(append(prefix, nonce...), nonce, payload, aad)
		}
		if !reservedNonce(out[HeaderSize+spkLen : HeaderSize+spkLen+NonceSize]) {
			break
		}
		// Probability 2⁻⁹⁶: seal again, with a new salt and nonce.
	}
	copy(out[HeaderSize+bodyLen:], k.wrapped)
	return ret, nil
}

// reservedNonce reports whether nonce is pkCounter, which no envelope uses.
func reservedNonce(nonce []byte) bool {
	return string(nonce) == string(pkCounter[:])
}

// Open authenticates and decrypts e, appends the partition key followed by
// the payload to dst, and returns the updated slice and the length of the
// partition key:
//
//	out, n, err := k.Open(dst, &e)
//	partitionKey, payload := out[len(dst):len(dst)+n], out[len(dst)+n:]
//
// If e is not authentic under k (tampered, truncated, sealed for another
// stream or under another data key), Open returns [ErrOpen] and dst
// unchanged, and whatever it had written to the capacity of dst is cleared.
// The remaining capacity of dst must not overlap e.
func (k *Key) Open(dst []byte, e *Envelope) (out []byte, partitionKeyLen int, err error) {
	return k.open(dst, e, nil)
}

// open is Open, with the test seam wrap of seal.
func (k *Key) open(dst []byte, e *Envelope, wrap func(cipher.AEAD) cipher.AEAD) (out []byte, partitionKeyLen int, err error) {
	if !e.Valid() || !bytes.Equal(e.WrappedKey, k.wrapped) {
		return dst, 0, ErrOpen
	}
	if k.destroyed.Load() {
		return dst, 0, ErrKeyDestroyed
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)

	body := e.Body
	b, aead, err := k.recordKey(s, e.Salt)
	if err != nil {
		return dst, 0, err
	}
	// The partition key length comes first: decrypt it alone, check it, then
	// decrypt the partition key into dst.
	l := s.pkLen[:]
	copy(l, body[:2])
	xorPartitionKeyStream(s, b, l, k.fips)
	n := int(binary.BigEndian.Uint16(l))
	if n > MaxPartitionKeySize || 2+n+NonceSize+TagSize > len(body) ||
		reservedNonce(body[2+n:2+n+NonceSize]) {
		return dst, 0, ErrOpen
	}
	spk := body[:2+n]

	aad := appendHeader(s.aad[:0], len(e.WrappedKey), len(body))
	aad = append(aad, e.Salt...)
	aad = append(aad, spk...)

	out, pk := sliceForAppend(dst, n)
	if anyOverlap(out[:cap(out)], e.Body) {
		panic("envelope: invalid buffer overlap")
	}
	// The stream's first two bytes covered the length: decrypt the key from
	// a copy of the sealed bytes that includes them.
	if n > 0 {
		s.pk = append(s.pk[:0], spk...)
		xorPartitionKeyStream(s, b, s.pk, k.fips)
		copy(pk, s.pk[2:])
		clear(s.pk)
	}
	if wrap != nil {
		aead = wrap(aead)
	}
	if k.fips {
		out, err = aead.Open(out, nil, body[2+n:], aad)
	} else {
		out, err = aead.Open(out, body[2+n:2+n+NonceSize], body[2+n+NonceSize:], aad)
	}
	if err != nil {
		clear(pk)
		return dst, 0, ErrOpen
	}
	return out, n, nil
}

// sliceForAppend takes a slice and a requested number of bytes. It returns a
// slice with the contents of the given slice followed by that many bytes and
// a second slice that aliases into it and contains only the extra bytes. If
// the original slice has sufficient capacity then no allocation is
// performed. (From crypto/cipher.)
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}
