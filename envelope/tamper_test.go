package envelope_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
)

// This file tampers with envelopes systematically and requires every
// tampered envelope to be rejected with envelope.ErrOpen, with nothing of
// the record returned. The record-level cases (a record moved to another
// stream through KMS, garbage after a record given to Decryptor.Decrypt,
// replay under another outbound partition key) are in
// record/badinput_test.go.

// tamperAD is the stream identity of the tampered records.
const tamperAD = "kinesis:orders"

// tamperer counts cases and checks rejections.
type tamperer struct {
	t       *testing.T
	dataKey []byte
	key     *envelope.Key // the honest consumer's key
	dst     []byte        // "dst" and zeroed capacity for the largest record
	zeros   []byte
	cases   int
	opened  int // cases that reached Open
}

func newTamperer(t *testing.T, wrappedKey []byte, maxSize int) *tamperer {
	dk := make([]byte, envelope.KeySize)
	rand.Read(dk)
	key, err := envelope.NewKey(dk, wrappedKey, []byte(tamperAD))
	require.NoError(t, err)
	dst := make([]byte, 3, 3+maxSize)
	copy(dst, "dst")
	return &tamperer{t: t, dataKey: dk, key: key, dst: dst, zeros: make([]byte, maxSize)}
}

// rejected requires b, taken as one record, to be rejected. If Parse accepts
// a prefix of b, that envelope must fail Open, both with the honest key and
// with the data key rebound to whatever wrapped key the envelope now
// carries (as if KMS returned the same data key for it): a tampered
// envelope is rejected even by a consumer that reads concatenated
// envelopes, and even when KMS cooperates.
func (tp *tamperer) rejected(b []byte, what string, args ...any) {
	tp.cases++
	e, _, err := envelope.Parse(b)
	if err != nil {
		if err != envelope.ErrOpen || e.Body != nil || e.Salt != nil || e.WrappedKey != nil {
			tp.t.Fatalf("%s: Parse: %v, %d-byte body", fmt.Sprintf(what, args...), err, len(e.Body))
		}
		return
	}
	tp.openFails(tp.key, &e, what, args...)
	if !bytes.Equal(e.WrappedKey, tp.key.WrappedKey()) {
		k, err := envelope.NewKey(tp.dataKey, e.WrappedKey, []byte(tamperAD))
		if err != nil {
			tp.t.Fatal(err)
		}
		tp.openFails(k, &e, what+" (same data key, tampered wrapped key)", args...)
	}
}

// openFails requires Open of e under k to fail with ErrOpen, return dst
// unchanged and leave no plaintext in its capacity.
func (tp *tamperer) openFails(k *envelope.Key, e *envelope.Envelope, what string, args ...any) {
	tp.opened++
	out, n, err := k.Open(tp.dst, e)
	if !errors.Is(err, envelope.ErrOpen) || n != 0 || len(out) != 3 || &out[0] != &tp.dst[0] {
		tp.t.Fatalf("%s: Open: err %v, n %d, %d bytes", fmt.Sprintf(what, args...), err, n, len(out))
	}
	// Open writes at most len(e.Body) bytes. Check them all, or for large
	// bodies their first and last 4 KiB: scanning a megabyte per case
	// dominates the run time under the race detector.
	c := tp.dst[3 : 3+min(len(e.Body), cap(tp.dst)-3)]
	if len(c) > 8<<10 {
		if !bytes.Equal(c[:4<<10], tp.zeros[:4<<10]) || !bytes.Equal(c[len(c)-4<<10:], tp.zeros[:4<<10]) {
			tp.t.Fatalf("%s: Open failed but left bytes in the capacity of dst", fmt.Sprintf(what, args...))
		}
		return
	}
	if !bytes.Equal(c, tp.zeros[:len(c)]) {
		tp.t.Fatalf("%s: Open failed but left bytes in the capacity of dst", fmt.Sprintf(what, args...))
	}
}

// opens requires e to open to pk and payload, and clears what it wrote.
func (tp *tamperer) opens(k *envelope.Key, e *envelope.Envelope, pk, payload []byte, what string) {
	tp.cases++
	out, n, err := k.Open(tp.dst, e)
	require.NoError(tp.t, err, what)
	require.Equal(tp.t, string(pk), string(out[3:3+n]), what)
	require.True(tp.t, bytes.Equal(payload, out[3+n:]), what)
	clear(tp.dst[3:cap(tp.dst)])
}

// envRegion is a field of an envelope, by byte range.
type envRegion struct {
	name       string
	start, end int
}

func envRegions(env []byte, pkLen int) []envRegion {
	wk := int(binary.BigEndian.Uint16(env[4:6]))
	bodyEnd := envelope.HeaderSize + int(binary.BigEndian.Uint32(env[6:10]))
	spkEnd := envelope.HeaderSize + 2 + pkLen
	nonceEnd := spkEnd + envelope.NonceSize
	return []envRegion{
		{"magic", 0, 3},
		{"version", 3, 4},
		{"wrapped key length", 4, 6},
		{"body length", 6, 10},
		{"salt", 10, envelope.HeaderSize},
		{"sealed partition key length", envelope.HeaderSize, envelope.HeaderSize + 2},
		{"sealed partition key", envelope.HeaderSize + 2, spkEnd},
		{"nonce", spkEnd, nonceEnd},
		{"ciphertext", nonceEnd, bodyEnd - envelope.TagSize},
		{"tag", bodyEnd - envelope.TagSize, bodyEnd},
		{"wrapped key", bodyEnd, bodyEnd + wk},
	}
}

// ciphertextSample is how many leading and trailing ciphertext bytes have
// every bit flipped, and how many more random ciphertext bits are flipped,
// for records whose ciphertext is too large to flip every bit of.
const (
	ciphertextEdge   = 64
	ciphertextRandom = 1024
	fullFlipMax      = 64 << 10
)

// TestTamper seals records with an empty, 1-byte, 1 KiB and 1 MiB payload,
// with and without a partition key, and for each:
//
//   - flips every bit of every region (for the 1 MiB payload: every bit of
//     every region but the ciphertext, and of the ciphertext every bit of
//     its first and last 64 bytes plus 1024 random bits: flipping all 8
//     million would take minutes);
//   - truncates it at every byte offset;
//   - appends garbage (Parse must return it as the rest, untouched, and the
//     envelope still opens: envelopes are self-delimiting; a consumer of
//     single records rejects the rest, see record/badinput_test.go);
//   - splices every region from a second record of the same sizes under the
//     same key;
//   - swaps in the wrapped key of a record of another data key, and a
//     second wrapped key of the same data key;
//   - opens it for other streams.
//
// Every case must fail with ErrOpen and return nothing.
func TestTamper(t *testing.T) {
	wrapped := make([]byte, 97) // the size of a kmstest CiphertextBlob
	rand.Read(wrapped)
	const maxPayload = 1 << 20
	pkMax := []byte("customer-42")
	tp := newTamperer(t, wrapped, envelope.Overhead+len(pkMax)+maxPayload+len(wrapped))
	rng := mrand.New(mrand.NewPCG(1, 2)) // fixed: a failure names the same bit again

	otherDK := make([]byte, envelope.KeySize)
	rand.Read(otherDK)
	otherWrapped := make([]byte, 184)
	rand.Read(otherWrapped)
	otherKey, err := envelope.NewKey(otherDK, otherWrapped, []byte(tamperAD))
	require.NoError(t, err)
	sameDKOtherWrapped, err := envelope.NewKey(tp.dataKey, otherWrapped, []byte(tamperAD))
	require.NoError(t, err)

	type counts struct{ flips, truncations, other int }
	var perRecord []string
	var total counts
	for _, size := range []int{0, 1, 1 << 10, maxPayload} {
		for _, pk := range [][]byte{nil, pkMax} {
			name := fmt.Sprintf("payload %d, partition key %d bytes", size, len(pk))
			var c counts
			mark := tp.cases
			count := func(n *int) { *n += tp.cases - mark; mark = tp.cases }
			payload := make([]byte, size)
			rand.Read(payload)
			env, err := tp.key.Seal(nil, pk, payload)
			require.NoError(t, err)
			e, rest, err := envelope.Parse(env)
			require.NoError(t, err)
			require.Empty(t, rest)
			tp.opens(tp.key, &e, pk, payload, name)

			// Bit flips, region by region, in place.
			for _, rg := range envRegions(env, len(pk)) {
				flip := func(bit int) {
					env[bit/8] ^= 1 << (bit % 8)
					tp.rejected(env, "%s: bit %d of the %s flipped", name, bit, rg.name)
					env[bit/8] ^= 1 << (bit % 8)
				}
				if rg.name != "ciphertext" || rg.end-rg.start <= fullFlipMax {
					for bit := rg.start * 8; bit < rg.end*8; bit++ {
						flip(bit)
					}
					continue
				}
				for bit := rg.start * 8; bit < (rg.start+ciphertextEdge)*8; bit++ {
					flip(bit)
				}
				for bit := (rg.end - ciphertextEdge) * 8; bit < rg.end*8; bit++ {
					flip(bit)
				}
				for range ciphertextRandom {
					flip(rg.start*8 + rng.IntN((rg.end-rg.start)*8))
				}
			}
			count(&c.flips)
			require.NoError(t, func() error { _, _, err := tp.key.Open(nil, &e); return err }(), "flips restored")

			// Truncation at every offset.
			for n := range len(env) {
				tp.rejected(env[:n], "%s: truncated to %d bytes", name, n)
			}
			count(&c.truncations)

			// Garbage after the envelope.
			for _, g := range [][]byte{{0}, []byte("garbage!"), env} {
				tp.cases++
				e2, rest, err := envelope.Parse(append(env[:len(env):len(env)], g...))
				require.NoError(t, err)
				require.True(t, bytes.Equal(g, rest), "%s: Parse must return what follows as the rest", name)
				tp.opens(tp.key, &e2, pk, payload, name+": with bytes after it")
			}

			// Splicing every region from a second record of the same sizes.
			env2, err := tp.key.Seal(nil, pk, payload)
			require.NoError(t, err)
			for _, rg := range envRegions(env, len(pk)) {
				if bytes.Equal(env[rg.start:rg.end], env2[rg.start:rg.end]) {
					continue // lengths, magic and wrapped key are the same
				}
				spliced := bytes.Clone(env)
				copy(spliced[rg.start:rg.end], env2[rg.start:rg.end])
				tp.rejected(spliced, "%s: %s from another record", name, rg.name)
			}

			// Another wrapped key: of another data key, opened with that
			// key; or of the same data key (two wrapped keys for one data
			// key), opened with it.
			swapped := envelope.Envelope{Salt: e.Salt, Body: e.Body, WrappedKey: otherWrapped}
			tp.openFails(otherKey, &swapped, "%s: wrapped key of another data key", name)
			tp.openFails(sameDKOtherWrapped, &swapped, "%s: another wrapped key of the same data key", name)
			tp.openFails(tp.key, &swapped, "%s: another wrapped key, honest key", name)
			b, err := swapped.MarshalBinary()
			require.NoError(t, err)
			tp.rejected(b, "%s: wrapped key swapped, re-marshalled", name)
			tp.cases += 3

			// Other streams.
			for _, ad := range []string{"kinesis:payments", "firehose:orders", "kinesis:Orders", "kinesis:orders\x00", "orders", ""} {
				k, err := envelope.NewKey(tp.dataKey, wrapped, []byte(ad))
				require.NoError(t, err)
				tp.cases++
				tp.openFails(k, &e, "%s: opened for %q", name, ad)
			}
			count(&c.other)
			total.flips += c.flips
			total.truncations += c.truncations
			total.other += c.other
			perRecord = append(perRecord, fmt.Sprintf("%-40s %6d bit flips %8d truncations %4d other", name, c.flips, c.truncations, c.other))
		}
	}
	for _, l := range perRecord {
		t.Log(l)
	}
	t.Logf("tamper: %d bit flips, %d truncations, %d other (garbage, splices, wrapped key swaps, other streams, base opens)",
		total.flips, total.truncations, total.other)
	t.Logf("tamper: %d cases, every one rejected with envelope.ErrOpen (%d reached Open)", tp.cases, tp.opened)
}

// TestTamperConcatenation flips every bit of a concatenation of three
// envelopes, as Firehose writes them to S3, and splits it with Parse: no
// flip may yield a record that opens but differs from what was sealed, and
// at least one record must fail.
func TestTamperConcatenation(t *testing.T) {
	wrapped := make([]byte, 97)
	rand.Read(wrapped)
	tp := newTamperer(t, wrapped, 1<<12)
	var obj []byte
	payloads := [][]byte{[]byte("first"), []byte(""), []byte("third record")}
	for _, p := range payloads {
		var err error
		obj, err = tp.key.Seal(obj, nil, p)
		require.NoError(t, err)
	}
	for bit := range len(obj) * 8 {
		obj[bit/8] ^= 1 << (bit % 8)
		failed := false
		b := obj
		for i := 0; len(b) > 0 && !failed; i++ {
			e, rest, err := envelope.Parse(b)
			if err != nil {
				failed = true
				break
			}
			out, n, err := tp.key.Open(nil, &e)
			switch {
			case err != nil:
				failed = true
			case i >= len(payloads) || n != 0 || !bytes.Equal(out, payloads[i]):
				t.Fatalf("bit %d: record %d opened to %q", bit, i, out)
			}
			b = rest
		}
		require.True(t, failed, "bit %d: the flip went unnoticed", bit)
		obj[bit/8] ^= 1 << (bit % 8)
		tp.cases++
	}
	t.Logf("concatenation: %d bit flips, each detected", tp.cases)
}
