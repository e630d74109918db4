// Command vecgen writes the test vectors of package envelope: the files of
// envelope/testdata/vectors and envelope/testdata/v1-pinned.txt.
//
// Run it from anywhere inside the module:
//
//	go run ./envelope/internal/vecgen
//
// It is deterministic: every salt, nonce, data key and wrapped key is derived
// from the name of its vector with SHA-256, so a run writes exactly the bytes
// that are checked in (its test, main_test.go, holds it to that). It writes
// envelopes with its own implementation of FORMAT.md, built only from the
// standard library's crypto/hkdf, crypto/aes and crypto/cipher (AES-CTR and
// AES-GCM with explicit nonces), not from package envelope, so that the
// vectors check the package's hand-optimised paths against the
// specification. Negative vectors are derived from positive ones by flipping
// bits in every region, truncating, rewriting lengths and version, appending
// bytes, and by forging envelopes that authenticate but break a rule of
// Parse or Open (magic, version, partition key length, reserved nonce).
//
// # File format
//
// FORMAT.md, "Test vectors", specifies the files and what a decoder does with
// each: a header of "key: value" lines (expect, stage, data key, wrapped key,
// ad, partition key, payload or payload size and payload sha256, comment), an
// empty line, and the record in base64 (standard alphabet, padded) in lines
// of 64 characters. Python and Node decoders read them: add vectors, never
// change the format.
//
// v1-pinned.txt is a version 1 envelope that every release must open; its
// SHA-256 is also fixed in envelope/vectors_test.go, so that the file cannot
// change silently.
package main

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Constants of FORMAT.md, written out here rather than taken from package
// envelope, so that a change there shows up as a vector failure.
const (
	magic             = "\xe5KS\x01"
	labelStreamKey    = "ksse v1 stream key"
	labelRecordKey    = "ksse v1 record key"
	headerSize        = 26
	saltSize          = 16
	nonceSize         = 12
	tagSize           = 16
	maxPartitionKey   = 1024
	maxWrappedKeySize = 6144
	minBodySize       = 2 + nonceSize + tagSize
	maxBodySize       = 2 + maxPartitionKey + nonceSize + 10<<20 + tagSize

	inlinePayloadMax = 4 << 10
	// VectorsDir and PinnedFile are relative to envelope/testdata.
	vectorsDir = "vectors"
	pinnedFile = "v1-pinned.txt"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("vecgen: ")
	dir := flag.String("dir", "", "the envelope/testdata directory to write (default: found from the current directory's module root)")
	flag.Parse()
	if *dir == "" {
		root, err := moduleRoot()
		if err != nil {
			log.Fatal(err)
		}
		*dir = filepath.Join(root, "envelope", "testdata")
	}
	n, err := write(*dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("vecgen: wrote %d vectors to %s\n", n, *dir)
}

// moduleRoot returns the closest directory at or above the current one that
// holds a go.mod.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod above the current directory; use -dir")
		}
		d = p
	}
}

// write writes every vector under dir (envelope/testdata), removing stale
// vector files, and returns the number written.
func write(dir string) (int, error) {
	files := files()
	vdir := filepath.Join(dir, vectorsDir)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return 0, err
	}
	old, err := filepath.Glob(filepath.Join(vdir, "*.txt"))
	if err != nil {
		return 0, err
	}
	for _, f := range old {
		if _, ok := files[filepath.Join(vectorsDir, filepath.Base(f))]; !ok {
			if err := os.Remove(f); err != nil {
				return 0, err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return 0, err
		}
	}
	return len(files), nil
}

// files returns the contents of every vector file, by path relative to
// envelope/testdata.
func files() map[string][]byte {
	m := make(map[string][]byte)
	for _, v := range vectors() {
		name := filepath.Join(vectorsDir, v.name+".txt")
		if v.name == "v1-pinned" {
			name = pinnedFile
		}
		if _, dup := m[name]; dup {
			panic("vecgen: duplicate vector " + v.name)
		}
		m[name] = v.encode()
	}
	return m
}

// vector is one test vector.
type vector struct {
	name    string
	expect  string // "success" or "failure"
	stage   string // "parse", "trailing" or "open", for a failure
	dataKey []byte
	wrapped []byte // the wrapped key the consumer holds
	ad      string
	pk      []byte // for a success
	payload []byte // for a success
	comment string
	data    []byte // the envelope (or whatever the record holds)
}

func (v *vector) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "expect: %s\n", v.expect)
	if v.expect == "failure" {
		fmt.Fprintf(&b, "stage: %s\n", v.stage)
	}
	fmt.Fprintf(&b, "data key: %x\n", v.dataKey)
	fmt.Fprintf(&b, "wrapped key: %x\n", v.wrapped)
	fmt.Fprintf(&b, "ad: %s\n", v.ad)
	if v.expect == "success" {
		fmt.Fprintf(&b, "partition key: %x\n", v.pk)
		if len(v.payload) <= inlinePayloadMax {
			fmt.Fprintf(&b, "payload: %x\n", v.payload)
		} else {
			sum := sha256.Sum256(v.payload)
			fmt.Fprintf(&b, "payload size: %d\n", len(v.payload))
			fmt.Fprintf(&b, "payload sha256: %x\n", sum)
		}
	}
	fmt.Fprintf(&b, "comment: %s\n\n", v.comment)
	s := base64.StdEncoding.EncodeToString(v.data)
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return b.Bytes()
}

// rnd returns n deterministic pseudorandom bytes for label: SHA-256 in
// counter mode.
func rnd(label string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := uint32(0); len(out) < n; i++ {
		h := sha256.New()
		h.Write([]byte("ksse vecgen\x00" + label + "\x00"))
		h.Write(binary.BigEndian.AppendUint32(nil, i))
		out = h.Sum(out)
	}
	return out[:n]
}

// record is what a producer seals, with every choice made explicit, plus the
// knobs that let vecgen forge envelopes that authenticate but break a rule.
type record struct {
	dataKey, wrapped []byte
	ad               string
	salt, nonce      []byte
	pk, payload      []byte

	// lengthField, if not nil, is the partition key length sealed in place
	// of len(pk).
	lengthField *uint16
	// magicField, if not empty, is written (and authenticated) in place of
	// the magic and version.
	magicField string
}

// newRecord returns a record with the key material, salt and nonce derived
// from seed.
func newRecord(seed, ad string, wrappedLen int, pk, payload []byte) *record {
	return &record{
		dataKey: rnd(seed+"/data key", 32),
		wrapped: append([]byte("vecgen:"+seed+":"), rnd(seed+"/wrapped key", wrappedLen)...)[:wrappedLen],
		ad:      ad,
		salt:    rnd(seed+"/salt", saltSize),
		nonce:   rnd(seed+"/nonce", nonceSize),
		pk:      pk,
		payload: payload,
	}
}

// seal writes the envelope of r as FORMAT.md specifies it.
func (r *record) seal() []byte {
	streamKey, err := hkdf.Key(sha256.New, r.dataKey, r.wrapped, labelStreamKey+r.ad, 32)
	check(err)
	recordKey, err := hkdf.Expand(sha256.New, streamKey, labelRecordKey+string(r.salt), 32)
	check(err)
	block, err := aes.NewCipher(recordKey)
	check(err)

	n := uint16(len(r.pk))
	if r.lengthField != nil {
		n = *r.lengthField
	}
	spk := binary.BigEndian.AppendUint16(nil, n)
	spk = append(spk, r.pk...)
	// The partition key stream: AES-CTR from FF×12 || 00000000. cipher's
	// CTR increments the whole block, which for fewer than 2³² blocks is the
	// 32-bit big-endian counter of the specification.
	iv := append(bytes.Repeat([]byte{0xff}, 12), 0, 0, 0, 0)
	cipher.NewCTR(block, iv).XORKeyStream(spk, spk)

	bodyLen := len(spk) + nonceSize + len(r.payload) + tagSize
	env := []byte(magic)
	if r.magicField != "" {
		env = []byte(r.magicField)
	}
	env = binary.BigEndian.AppendUint16(env, uint16(len(r.wrapped)))
	env = binary.BigEndian.AppendUint32(env, uint32(bodyLen))
	env = append(env, r.salt...)
	env = append(env, spk...)
	aad := slices.Clone(env)

	aead, err := cipher.NewGCM(block)
	check(err)
	env = append(env, r.nonce...)
	env = aead.Seal(env, r.nonce, r.payload, aad)
	return append(env, r.wrapped...)
}

// parseStage returns the stage at which a consumer of one record must reject
// b, by the parsing rules of FORMAT.md, or "" if b is exactly one envelope.
func parseStage(b []byte) string {
	if len(b) < headerSize || string(b[:4]) != magic {
		return "parse"
	}
	wk := int(binary.BigEndian.Uint16(b[4:6]))
	body := int64(binary.BigEndian.Uint32(b[6:10]))
	if wk < 1 || wk > maxWrappedKeySize || body < minBodySize || body > maxBodySize {
		return "parse"
	}
	size := int64(headerSize) + body + int64(wk)
	switch {
	case int64(len(b)) < size:
		return "parse"
	case int64(len(b)) > size:
		return "trailing"
	}
	return ""
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}

func u16(v uint16) *uint16 { return &v }

// regions are the fields of an envelope, by byte range, for the bit-flip
// vectors.
type region struct {
	name       string
	start, end int
}

func regions(env []byte, pkLen int) []region {
	wk := int(binary.BigEndian.Uint16(env[4:6]))
	body := int(binary.BigEndian.Uint32(env[6:10]))
	spk := headerSize + 2 + pkLen
	nonceEnd := spk + nonceSize
	bodyEnd := headerSize + body
	rs := []region{
		{"magic", 0, 3},
		{"version", 3, 4},
		{"wrapped-key-length", 4, 6},
		{"body-length", 6, 10},
		{"salt", 10, headerSize},
		{"sealed-pk-length", headerSize, headerSize + 2},
		{"sealed-pk", headerSize + 2, spk},
		{"nonce", spk, nonceEnd},
		{"ciphertext", nonceEnd, bodyEnd - tagSize},
		{"tag", bodyEnd - tagSize, bodyEnd},
		{"wrapped-key", bodyEnd, bodyEnd + wk},
	}
	return slices.DeleteFunc(rs, func(r region) bool { return r.start == r.end })
}

// vectors returns every vector, positive ones first.
func vectors() []*vector {
	var vs []*vector
	success := func(name, comment string, r *record) *vector {
		v := &vector{
			name: name, expect: "success", dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad,
			pk: r.pk, payload: r.payload, comment: comment, data: r.seal(),
		}
		if parseStage(v.data) != "" {
			panic("vecgen: positive vector " + name + " does not parse")
		}
		vs = append(vs, v)
		return v
	}
	// failure adds a negative vector for the consumer state of base, with
	// the stage computed from the parsing rules, or forced when stage is not
	// empty (for the open stage, which parsing cannot tell).
	failure := func(name, comment string, base *vector, data []byte) *vector {
		stage := parseStage(data)
		if stage == "" {
			stage = "open"
		}
		v := &vector{
			name: name, expect: "failure", stage: stage, dataKey: base.dataKey, wrapped: base.wrapped,
			ad: base.ad, comment: comment, data: data,
		}
		vs = append(vs, v)
		return v
	}

	// The pinned vector: a typical Kinesis record. Its bytes must never
	// change; see the package documentation.
	pinned := success("v1-pinned", "version 1 envelope pinned forever: every release must open it",
		newRecord("v1-pinned", "kinesis:orders", 97, []byte("customer-42"), []byte(`{"order":42,"total":"12.50"}`)))

	// Positive vectors.
	empty := success("empty-record", "empty partition key and empty payload (a Firehose record with no data)",
		newRecord("empty-record", "firehose:events", 97, nil, nil))
	pkOnly := success("pk-only", "one-byte partition key, empty payload (a zero-length Kinesis record)",
		newRecord("pk-only", "kinesis:orders", 97, []byte("p"), nil))
	success("payload-only", "empty partition key, one-byte payload",
		newRecord("payload-only", "firehose:events", 97, nil, []byte("x")))
	success("one-byte-each", "one-byte partition key and payload",
		newRecord("one-byte-each", "kinesis:s", 97, []byte("k"), []byte{0}))
	success("unicode-pk", "partition key of multi-byte UTF-8 characters",
		newRecord("unicode-pk", "kinesis:orders", 97, []byte("клиент-42/顧客/🛒"), []byte("payload")))
	success("max-partition-key", "largest partition key: 1024 bytes (256 four-byte characters), 1 KiB payload",
		newRecord("max-partition-key", "kinesis:orders", 97, []byte(strings.Repeat("𝄞", 256)), rnd("max-partition-key/payload", 1024)))
	success("payload-1KiB", "1 KiB payload",
		newRecord("payload-1KiB", "kinesis:orders", 97, []byte("user-1"), rnd("payload-1KiB/payload", 1024)))
	success("payload-20000", "20,000-byte payload, given by size and SHA-256",
		newRecord("payload-20000", "kinesis:telemetry", 97, []byte("device-7"), rnd("payload-20000/payload", 20000)))
	success("wrapped-key-1", "smallest wrapped key: 1 byte",
		newRecord("wrapped-key-1", "kinesis:orders", 1, []byte("pk"), []byte("payload")))
	success("wrapped-key-184", "wrapped key of 184 bytes, the size of an AWS KMS CiphertextBlob for an AES_256 data key",
		newRecord("wrapped-key-184", "kinesis:orders", 184, []byte("pk"), []byte("payload")))
	success("wrapped-key-max", "largest wrapped key: 6144 bytes",
		newRecord("wrapped-key-max", "kinesis:orders", maxWrappedKeySize, []byte("pk"), []byte("payload")))
	success("long-ad", "associated data of the longest stream name (128 characters)",
		newRecord("long-ad", "kinesis:"+strings.Repeat("a", 128), 97, []byte("pk"), []byte("payload")))
	success("payload-is-envelope", "a payload that is itself an envelope (the pinned one)",
		newRecord("payload-is-envelope", "kinesis:orders", 97, []byte("nested"), pinned.data))
	sealedFF := newRecord("nonce-almost-reserved", "kinesis:orders", 97, []byte("pk"), []byte("payload"))
	sealedFF.nonce = append(bytes.Repeat([]byte{0xff}, 11), 0xfe)
	success("nonce-almost-reserved", "nonce FF×11 FE: only FF×12 is reserved",
		sealedFF)
	sealedFF = newRecord("nonce-almost-reserved-first", "kinesis:orders", 97, []byte("pk"), []byte("payload"))
	sealedFF.nonce = append([]byte{0xfe}, bytes.Repeat([]byte{0xff}, 11)...)
	success("nonce-almost-reserved-first", "nonce FE FF×11: only FF×12 is reserved (a check of the last bytes alone rejects this)",
		sealedFF)
	success("partition-key-14", "partition key of 14 bytes: the sealed partition key is exactly one AES block",
		newRecord("partition-key-14", "kinesis:orders", 97, []byte("customer-00014"), []byte("payload")))
	success("partition-key-30", "partition key of 30 bytes: the sealed partition key is exactly two AES blocks",
		newRecord("partition-key-30", "kinesis:orders", 97, []byte("customer-000000000000000000030"), []byte("payload")))
	success("ad-empty", "empty associated data (the header line is \"ad: \", nothing after the space)",
		newRecord("ad-empty", "", 97, []byte("pk"), []byte("payload")))
	success("ad-spaces", "associated data with a leading and a trailing space, both part of it: values are not trimmed",
		newRecord("ad-spaces", " kinesis:orders ", 97, []byte("pk"), []byte("payload")))

	// Negative vectors from the pinned one: one flipped bit at the first and
	// at the last byte of every region.
	for _, rg := range regions(pinned.data, len(pinned.pk)) {
		for _, at := range []struct {
			where string
			i     int
			bit   byte
		}{{"first", rg.start, 0x01}, {"last", rg.end - 1, 0x80}} {
			if at.where == "last" && rg.end-rg.start == 1 {
				at.bit = 0x02
			}
			d := slices.Clone(pinned.data)
			d[at.i] ^= at.bit
			failure(fmt.Sprintf("flip-%s-%s", rg.name, at.where),
				fmt.Sprintf("bit 0x%02x of the %s byte of the %s flipped", at.bit, at.where, strings.ReplaceAll(rg.name, "-", " ")),
				pinned, d)
		}
	}
	// A flipped bit in the wrapped key with a consumer that holds that
	// flipped wrapped key, as if KMS unwrapped it to the same data key: the
	// wrapped key is the HKDF salt of the stream key, so the tag fails.
	{
		d := slices.Clone(pinned.data)
		d[len(d)-1] ^= 1
		v := failure("flip-wrapped-key-same-data-key",
			"last wrapped key bit flipped, and the consumer holds the same data key under that wrapped key: the wrapped key is bound by HKDF",
			pinned, d)
		v.wrapped = slices.Clone(d[len(d)-len(pinned.wrapped):])
	}
	// The same for empty partition key and payload, where the body is
	// nothing but length, nonce and tag.
	for _, rg := range regions(empty.data, 0) {
		if rg.name != "sealed-pk-length" && rg.name != "nonce" && rg.name != "tag" {
			continue
		}
		d := slices.Clone(empty.data)
		d[rg.end-1] ^= 0x80
		failure("empty-record-flip-"+rg.name, "empty record, last bit of the "+strings.ReplaceAll(rg.name, "-", " ")+" flipped", empty, d)
	}

	// Version and magic.
	for _, ver := range []byte{0x00, 0x02, 0xff} {
		d := slices.Clone(pinned.data)
		d[3] = ver
		failure(fmt.Sprintf("version-%02x", ver), fmt.Sprintf("version byte %02x: only 01 is defined", ver), pinned, d)
	}
	failure("empty-input", "zero bytes", pinned, nil)
	failure("magic-only", "the four bytes of magic and version alone", pinned, []byte(magic))
	failure("plaintext-json", "a plaintext JSON record", pinned, []byte(`{"order":42,"total":"12.50"}`))

	// Truncations.
	for _, n := range []int{1, 3, 4, 10, headerSize - 1, headerSize, headerSize + 2, len(pinned.data) / 2,
		len(pinned.data) - len(pinned.wrapped), len(pinned.data) - 1} {
		failure(fmt.Sprintf("truncated-%03d", n), fmt.Sprintf("the pinned envelope truncated to %d of %d bytes", n, len(pinned.data)),
			pinned, slices.Clone(pinned.data[:n]))
	}

	// Lengths out of range or inconsistent with the input.
	setLens := func(wk, body uint32, pad int) []byte {
		d := slices.Clone(pinned.data)
		binary.BigEndian.PutUint16(d[4:6], uint16(wk))
		binary.BigEndian.PutUint32(d[6:10], body)
		return append(d, make([]byte, pad)...)
	}
	wk := uint32(len(pinned.wrapped))
	body := uint32(len(pinned.data) - headerSize - len(pinned.wrapped))
	failure("wrapped-key-length-0", "wrapped key length 0 (the body absorbs the wrapped key bytes)", pinned, setLens(0, body+wk, 0))
	failure("wrapped-key-length-6145", "wrapped key length 6145, one over the limit, with enough bytes to hold it",
		pinned, setLens(maxWrappedKeySize+1, body, maxWrappedKeySize+1-int(wk)))
	failure("wrapped-key-length-ffff", "wrapped key length 65535", pinned, setLens(0xffff, body, 0))
	failure("body-length-29", "body length 29, one under the smallest body (the wrapped key absorbs the rest)",
		pinned, setLens(wk+body-minBodySize+1, minBodySize-1, 0))
	failure("body-length-max+1", "body length one over the largest body (10 MiB payload, 1024-byte partition key)",
		pinned, setLens(wk, maxBodySize+1, 0))
	failure("body-length-max", "body length exactly the largest body (10,486,814), allowed, but the input holds 191 bytes: "+
		"Parse rejects it because the input is short, a streaming reader reads on (a full envelope of this size would be a 14 MB vector)",
		pinned, setLens(wk, maxBodySize, 0))
	failure("body-length-ffffffff", "body length 2³²-1", pinned, setLens(wk, 0xffffffff, 0))
	failure("body-length-plus-1", "body length one more than the input holds", pinned, setLens(wk, body+1, 0))
	failure("wrapped-key-length-plus-1", "wrapped key length one more than the input holds", pinned, setLens(wk+1, body, 0))
	failure("body-length-minus-1", "body length one less: Parse leaves one byte after the envelope", pinned, setLens(wk, body-1, 0))
	failure("boundary-shifted", "body length one less and wrapped key length one more: parses, but the body and the wrapped key are wrong",
		pinned, setLens(wk+1, body-1, 0))
	failure("boundary-shifted-other-way", "body length one more and wrapped key length one less", pinned, setLens(wk-1, body+1, 0))

	// Trailing bytes.
	failure("trailing-zero-byte", "the pinned envelope and one zero byte", pinned, append(slices.Clone(pinned.data), 0))
	failure("trailing-envelope", "two envelopes: a concatenation is not one record", pinned,
		append(slices.Clone(pinned.data), pinned.data...))

	// Wrong consumer state.
	for _, w := range []struct{ name, ad string }{
		{"other-stream", "kinesis:payments"},
		{"firehose-same-name", "firehose:orders"},
		{"case", "kinesis:Orders"},
		{"trailing-space", "kinesis:orders "},
		{"name-only", "orders"},
		{"empty", ""},
	} {
		v := failure("wrong-ad-"+w.name, fmt.Sprintf("sealed for %q, opened for %q", pinned.ad, w.ad), pinned, slices.Clone(pinned.data))
		v.ad = w.ad
	}
	{
		v := failure("wrong-data-key", "the data key with its first bit flipped", pinned, slices.Clone(pinned.data))
		v.dataKey = slices.Clone(pinned.dataKey)
		v.dataKey[0] ^= 1
		v = failure("wrong-wrapped-key", "the consumer holds another wrapped key than the envelope carries (the same data key)",
			pinned, slices.Clone(pinned.data))
		v.wrapped = append(slices.Clone(pinned.wrapped), 0)
	}
	// Another envelope's wrapped key in the pinned envelope.
	{
		other := pkOnly // same ad and wrapped key size
		d := slices.Clone(pinned.data)
		copy(d[len(d)-len(other.wrapped):], other.wrapped)
		v := failure("swapped-wrapped-key", "the wrapped key replaced by that of another record (pk-only), opened with that record's key",
			pinned, d)
		v.dataKey, v.wrapped = other.dataKey, other.wrapped
	}

	// Forgeries that authenticate, made with the key, but break a rule of
	// Open.
	{
		r := newRecord("forged-pk-1025", "kinesis:orders", 97, []byte(strings.Repeat("k", maxPartitionKey+1)), []byte("payload"))
		base := &vector{dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad}
		failure("forged-pk-length-1025", "an authentic envelope whose partition key is 1025 bytes, over the limit", base, r.seal())

		r = newRecord("forged-pk-length-overrun", "kinesis:orders", 97, []byte("pk"), []byte("payload"))
		r.lengthField = u16(0xffff)
		base = &vector{dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad}
		failure("forged-pk-length-ffff", "the sealed partition key length says 65535 (the body holds 2)", base, r.seal())

		r = newRecord("forged-pk-length-body", "kinesis:orders", 97, []byte("pk"), []byte("payload"))
		r.lengthField = u16(2 + 7) // room for the partition key, not for the payload's tag
		base = &vector{dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad}
		failure("forged-pk-length-9", "the sealed partition key length says 9: 2 + 9 + 12 + 16 = 39 is the body length, so the bound holds; "+
			"the nonce and the ciphertext are then read at the wrong offsets and the tag fails", base, r.seal())

		// Partition key lengths within 1024 for which the body is too
		// short: 2 + 2 + 12 + 7 + 16 = 39 bytes.
		for _, f := range []struct {
			n       uint16
			comment string
		}{
			{10, "the sealed partition key length says 10: 2 + 10 + 12 + 16 = 40, one more than the body length 39"},
			{26, "the sealed partition key length says 26: the nonce would end one byte past the body"},
			{38, "the sealed partition key length says 38: the partition key itself would end one byte past the body"},
		} {
			name := fmt.Sprintf("forged-pk-length-%d", f.n)
			r = newRecord(name, "kinesis:orders", 97, []byte("pk"), []byte("payload"))
			r.lengthField = u16(f.n)
			base = &vector{dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad}
			failure(name, f.comment, base, r.seal())
		}

		// Authentic envelopes, the header in the additional data, with
		// another version or magic: only the parse checks reject them.
		for _, f := range []struct {
			name, magic, comment string
		}{
			{"forged-version-00", "\xe5KS\x00", "an authentic envelope with version byte 00: only 01 is defined"},
			{"forged-version-02", "\xe5KS\x02", "an authentic envelope with version byte 02: only 01 is defined"},
			{"forged-magic-byte-0", "\xe4KS\x01", "an authentic envelope whose first magic byte is E4, not E5"},
			{"forged-magic-byte-1", "\xe5JS\x01", "an authentic envelope whose second magic byte is 4A (J), not 4B (K)"},
			{"forged-magic-byte-2", "\xe5KR\x01", "an authentic envelope whose third magic byte is 52 (R), not 53 (S)"},
		} {
			r = newRecord(f.name, "kinesis:orders", 97, []byte("pk"), []byte("payload"))
			r.magicField = f.magic
			base = &vector{dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad}
			failure(f.name, f.comment, base, r.seal())
		}

		r = newRecord("forged-reserved-nonce", "kinesis:orders", 97, []byte("pk"), []byte("payload"))
		r.nonce = bytes.Repeat([]byte{0xff}, nonceSize)
		base = &vector{dataKey: r.dataKey, wrapped: r.wrapped, ad: r.ad}
		failure("forged-reserved-nonce", "an authentic envelope with the reserved nonce FF×12, which Open rejects", base, r.seal())
	}
	return vs
}
