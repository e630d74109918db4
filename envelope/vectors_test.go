package envelope_test

import (
	"bufio"
	"bytes"
	"crypto/fips140"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
)

// The vectors are written by envelope/internal/vecgen (go run
// ./envelope/internal/vecgen); FORMAT.md, "Test vectors", specifies their
// format. vecgen's test checks that the files are its output.
const (
	vecPinned = "testdata/v1-pinned.txt"
	vecGlob   = "testdata/vectors/*.txt"

	// vecPinnedSHA256 is the SHA-256 of v1-pinned.txt. The pinned envelope
	// must open with every release, so the file must never change: not by
	// hand, not by regenerating it.
	vecPinnedSHA256 = "7fe2f8bd26e5059ad649e30275a6d1b68969793d40cc3c9eeb6314d7ac1a59e9"
)

// testVector is one parsed vector file.
type testVector struct {
	file     string
	expect   string // "success" or "failure"
	stage    string // "parse", "trailing" or "open"
	dataKey  []byte
	wrapped  []byte
	ad       string
	pk       []byte
	payload  []byte // nil if given by size and digest
	size     int
	sha256   []byte
	comment  string
	envelope []byte
}

// loadVectors reads the pinned vector and every vector file, failing the test
// if there are none (a glob that matches nothing would make every test
// over them pass).
func loadVectors(t testing.TB) []*testVector {
	t.Helper()
	files, err := filepath.Glob(vecGlob)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 50, "the glob %s matched %d files", vecGlob, len(files))
	files = append([]string{vecPinned}, files...)
	vs := make([]*testVector, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		v, err := parseVector(b)
		require.NoError(t, err, f)
		v.file = f
		vs = append(vs, v)
	}
	return vs
}

func parseVector(b []byte) (*testVector, error) {
	v := &testVector{size: -1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	header := true
	var body strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if header {
			if line == "" {
				header = false
				continue
			}
			key, val, ok := strings.Cut(line, ": ")
			if !ok {
				key, val, ok = strings.Cut(line, ":")
				if !ok || val != "" {
					return nil, fmt.Errorf("bad header line %q", line)
				}
			}
			var err error
			switch key {
			case "expect":
				v.expect = val
			case "stage":
				v.stage = val
			case "data key":
				v.dataKey, err = hex.DecodeString(val)
			case "wrapped key":
				v.wrapped, err = hex.DecodeString(val)
			case "ad":
				v.ad = val
			case "partition key":
				v.pk, err = hex.DecodeString(val)
			case "payload":
				v.payload, err = hex.DecodeString(val)
			case "payload size":
				v.size, err = strconv.Atoi(val)
			case "payload sha256":
				v.sha256, err = hex.DecodeString(val)
			case "comment":
				v.comment = val
			default:
				return nil, fmt.Errorf("unknown header %q", key)
			}
			if err != nil {
				return nil, fmt.Errorf("header %q: %v", key, err)
			}
			continue
		}
		body.WriteString(line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var err error
	v.envelope, err = base64.StdEncoding.DecodeString(body.String())
	if err != nil {
		return nil, err
	}
	switch {
	case v.expect == "success" && v.stage == "":
		if v.payload == nil && (v.size < 0 || len(v.sha256) != sha256.Size) {
			return nil, fmt.Errorf("success without payload")
		}
	case v.expect == "failure" && (v.stage == "parse" || v.stage == "trailing" || v.stage == "open"):
	default:
		return nil, fmt.Errorf("bad expect %q / stage %q", v.expect, v.stage)
	}
	return v, nil
}

// TestVectors runs every vector file: NewKey with the consumer's key
// material, Parse, and Open.
func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	var succ, fail int
	stages := map[string]int{}
	for _, v := range vs {
		if v.expect == "success" {
			succ++
		} else {
			fail++
			stages[v.stage]++
		}
		t.Run(strings.TrimSuffix(filepath.Base(v.file), ".txt"), func(t *testing.T) {
			t.Parallel()
			runVector(t, v, false)
			runVector(t, v, true)
		})
	}
	t.Logf("%d vectors: %d success, %d failure (parse %d, trailing %d, open %d)",
		len(vs), succ, fail, stages["parse"], stages["trailing"], stages["open"])
	require.GreaterOrEqual(t, succ, 10)
	require.Positive(t, stages["parse"])
	require.Positive(t, stages["trailing"])
	require.Positive(t, stages["open"])
}

// runVector checks v with a key in FIPS mode (crypto/hkdf.Expand,
// cipher.NewCTR, cipher.NewGCMWithRandomNonce) or not (the hand-optimised
// paths).
func runVector(t *testing.T, v *testVector, fips bool) {
	if !fips && fips140.Enforced() {
		// The hand-optimised paths use cipher.NewGCM with explicit
		// nonces, which GODEBUG=fips140=only forbids.
		return
	}
	t.Logf("%s (fips %v): %s", v.expect, fips, v.comment)
	key, err := envelope.NewKeyMode(v.dataKey, v.wrapped, []byte(v.ad), fips)
	require.NoError(t, err)
	require.Equal(t, fips, key.FIPSMode())

	e, rest, err := envelope.Parse(v.envelope)
	if v.stage == "parse" {
		require.ErrorIs(t, err, envelope.ErrOpen)
		require.Equal(t, envelope.Envelope{}, e, "a failed Parse returns the zero Envelope")
		require.Nil(t, rest)
		return
	}
	require.NoError(t, err)
	re, err := e.MarshalBinary()
	require.NoError(t, err)
	require.Equal(t, v.envelope[:len(v.envelope)-len(rest)], re, "parse→marshal must give the same bytes")
	if v.stage == "trailing" {
		require.NotEmpty(t, rest, "bytes must follow the envelope")
		return
	}
	require.Empty(t, rest)

	dst := []byte("dst")
	out, n, err := key.Open(dst, &e)
	if v.stage == "open" {
		require.ErrorIs(t, err, envelope.ErrOpen)
		require.Equal(t, "dst", string(out), "a failed Open returns dst unchanged")
		require.Zero(t, n)
		return
	}
	require.NoError(t, err)
	require.Equal(t, "dst", string(out[:3]))
	require.Equal(t, hex.EncodeToString(v.pk), hex.EncodeToString(out[3:3+n]), "partition key")
	payload := out[3+n:]
	if v.payload != nil {
		require.True(t, bytes.Equal(v.payload, payload), "payload")
	} else {
		require.Len(t, payload, v.size)
		sum := sha256.Sum256(payload)
		require.Equal(t, v.sha256, sum[:], "payload SHA-256")
	}
	require.Len(t, v.envelope, key.SealedSize(n, len(payload)), "SealedSize")
}

// TestPinnedVector requires the pinned version 1 vector to be the file it
// always was, and to open.
func TestPinnedVector(t *testing.T) {
	b, err := os.ReadFile(vecPinned)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	require.Equal(t, vecPinnedSHA256, hex.EncodeToString(sum[:]),
		"%s changed: version 1 envelopes must open forever; restore the file", vecPinned)
	v, err := parseVector(b)
	require.NoError(t, err)
	require.Equal(t, "success", v.expect)
	runVector(t, v, false)
	runVector(t, v, true)
}

// errMore is what the input of a Reader returns after the bytes it was given
// in TestVectorsReader: the Reader asked for more.
var errMore = errors.New("more bytes wanted")

// headerOnly is the verdict a streaming reader must reach on the 26 header
// bytes alone (FORMAT.md, "Parsing rules" 2: lengths are checked before
// anything else is read), for the vectors that tell the length bounds apart
// from rule 3. body-length-max and body-length-max+1 are the pair for the
// upper bound of the body length: Parse rejects both, the first because the
// input is short, the second by the bound.
var headerOnly = map[string]bool{ // true: rejected
	"body-length-29":            true,
	"body-length-max+1":         true,
	"body-length-ffffffff":      true,
	"wrapped-key-length-0":      true,
	"wrapped-key-length-6145":   true,
	"wrapped-key-length-ffff":   true,
	"body-length-max":           false,
	"body-length-plus-1":        false,
	"wrapped-key-length-plus-1": false,
}

// TestVectorsReader reads every vector with envelope.Reader: it must split
// what Parse splits and reject what Parse rejects, and reject a header with
// lengths out of bounds before it reads past the header.
func TestVectorsReader(t *testing.T) {
	vs := loadVectors(t)
	named := 0
	for _, v := range vs {
		name := strings.TrimSuffix(filepath.Base(v.file), ".txt")
		r := envelope.NewReader(bytes.NewReader(v.envelope))
		e, off, err := r.Next()
		switch {
		case len(v.envelope) == 0:
			require.ErrorIs(t, err, io.EOF, name)
		case v.stage == "parse":
			require.ErrorIs(t, err, envelope.ErrMalformed, name)
		default:
			require.NoError(t, err, name)
			require.Zero(t, off, name)
			pe, _, err := envelope.Parse(v.envelope)
			require.NoError(t, err, name)
			require.Equal(t, pe, e, name)
			_, _, err = r.Next()
			if v.stage == "trailing" {
				require.NotErrorIs(t, err, io.EOF, "%s: bytes follow the envelope", name)
			} else {
				require.ErrorIs(t, err, io.EOF, name)
			}
		}

		if len(v.envelope) < envelope.HeaderSize {
			continue
		}
		hr := envelope.NewReader(io.MultiReader(bytes.NewReader(v.envelope[:envelope.HeaderSize]), iotest.ErrReader(errMore)))
		_, _, err = hr.Next()
		rejected := errors.Is(err, envelope.ErrMalformed)
		require.True(t, rejected || errors.Is(err, errMore), "%s: %v", name, err)
		if rejected {
			require.Equal(t, "parse", v.stage, "%s: the header alone was rejected", name)
		}
		if want, ok := headerOnly[name]; ok {
			named++
			require.Equal(t, want, rejected, "%s: header alone rejected", name)
		}
	}
	require.Equal(t, len(headerOnly), named, "vectors of headerOnly missing")
}
