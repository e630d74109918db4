package envelope

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The helpers of this file are copied in keycache/redact_test.go and
// record/redact_test.go.

// printVerbs are the fmt formats used by the redaction tests.
var printVerbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%20v", "%-8s", "%.3s", "% x"}

// leak returns a description of the first secret that out shows, in raw,
// hexadecimal, decimal, Go-syntax, quoted or base64 form, as a run of 8
// bytes at any offset; or "" if it shows none.
func leak(out string, secrets ...[]byte) string {
	const w = 8
	for si, sec := range secrets {
		for i := 0; i+w <= len(sec); i++ {
			win := sec[i : i+w]
			forms := []string{
				string(win),
				hex.EncodeToString(win),
				strings.ToUpper(hex.EncodeToString(win)),
				fmt.Sprintf("% x", win),
				strings.Trim(fmt.Sprint(win), "[]"),
				strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", win), "[]byte{"), "}"),
				strings.Trim(strconv.Quote(string(win)), `"`),
			}
			for _, f := range forms {
				if strings.Contains(out, f) {
					return fmt.Sprintf("secret %d bytes %d to %d as %q", si, i, i+w, f)
				}
			}
		}
		for a := range 3 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				e := enc.EncodeToString(sec[a:])
				for j := 0; j+12 <= len(e)-4; j += 4 {
					if strings.Contains(out, e[j:j+12]) {
						return fmt.Sprintf("secret %d in base64 %q", si, e[j:j+12])
					}
				}
			}
		}
	}
	return ""
}

// keySecrets returns what an envelope.Key made from dataKey, wrapped and ad
// must never show, computed as FORMAT.md says: the data key, the stream key
// (the key material in FIPS mode) and the chaining values of the two
// HMAC-SHA256 states precomputed from it (the rest of a marshaled state is
// a constant prefix, an empty block and the length).
func keySecrets(t *testing.T, dataKey, wrapped []byte, ad string) [][]byte {
	t.Helper()
	streamKey, err := hkdf.Key(sha256.New, dataKey, wrapped, "ksse v1 stream key"+ad, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{bytes.Clone(dataKey), streamKey}
	for _, pad := range []byte{0x36, 0x5c} {
		var block [sha256.BlockSize]byte
		copy(block[:], streamKey)
		for i := range block {
			block[i] ^= pad
		}
		h := sha256.New()
		h.Write(block[:])
		st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, st[4:4+sha256.Size])
	}
	return secrets
}

// printed returns v as fmt, log/slog and encoding/json show it, by format.
func printed(v any) map[string]string {
	outs := make(map[string]string)
	for _, verb := range printVerbs {
		outs[verb] = fmt.Sprintf(verb, v)
	}
	outs["Sprint"] = fmt.Sprint(v)
	outs["Sprintln"] = fmt.Sprintln(v)
	outs["in a struct %+v"] = fmt.Sprintf("%+v", struct{ V any }{v})
	outs["in a slice %#v"] = fmt.Sprintf("%#v", []any{v})
	outs["Errorf %w"] = fmt.Errorf("wrapped %v: %w", v, fmt.Errorf("%+v", v)).Error()
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(h(&buf))
		l.Info("msg", "v", v)
		l.Info("msg", slog.Any("v", v), slog.Group("g", "v", v))
		l.With("v", v).Info("msg")
		outs[name] = buf.String()
	}
	j, _ := json.Marshal(v)
	outs["json"] = string(j)
	return outs
}

// checkRedacted checks that v, a pointer to a type that holds key
// material, and a copy of what it points to, print none of secrets, and
// that v prints as want.
func checkRedacted(t *testing.T, v any, want string, secrets [][]byte) {
	t.Helper()
	// A copy of the value, which fmt prints field by field without its
	// methods: made with reflect, as go vet rejects copying a lock.
	copied := reflect.ValueOf(v).Elem().Interface()
	for what, x := range map[string]any{"pointer": v, "copy": copied} {
		for format, out := range printed(x) {
			if s := leak(out, secrets...); s != "" {
				t.Errorf("%T %s printed with %s shows %s: %s", v, what, format, s, out)
			}
		}
	}
	for format, out := range printed(v) {
		if format != "json" && !strings.Contains(out, want) {
			t.Errorf("%T printed with %s is not %s: %s", v, format, want, out)
		}
	}
}

// TestLeakFindsSecrets: the checker of the redaction tests finds the forms
// it looks for.
func TestLeakFindsSecrets(t *testing.T) {
	sec := []byte("0123456789abcdefghijklmnopqrstuv")
	for _, out := range []string{
		fmt.Sprintf("%v", sec), fmt.Sprintf("%x", sec), fmt.Sprintf("%X", sec),
		fmt.Sprintf("%#v", sec), fmt.Sprintf("% x", sec), fmt.Sprintf("%q", sec),
		string(sec), base64.StdEncoding.EncodeToString(sec[5:]),
		base64.RawURLEncoding.EncodeToString(sec[1:20]),
		fmt.Sprintf("%+v", struct{ B []byte }{sec[3:13]}),
	} {
		if leak(out, sec) == "" {
			t.Errorf("leak does not see the secret in %q", out)
		}
	}
	if s := leak("envelope.Key{REDACTED}", sec); s != "" {
		t.Errorf("leak sees %s in the redacted text", s)
	}
}

// TestKeyPrintsRedacted: a Key, its pointer or a copy, printed with any
// verb or logged with log/slog, shows none of its key material.
func TestKeyPrintsRedacted(t *testing.T) {
	dataKey := bytes.Repeat([]byte{0x5a, 0x17, 0xc3, 0x08}, KeySize/4)
	wrapped, ad := []byte("wrapped-key"), "kinesis:orders"
	for _, fips := range []bool{false, true} {
		k, err := newKey(dataKey, wrapped, []byte(ad), fips)
		if err != nil {
			t.Fatal(err)
		}
		secrets := keySecrets(t, dataKey, wrapped, ad)
		// keySecrets computes what the Key holds.
		m := k.m.Load()
		if fips {
			if !bytes.Equal(m.prk, secrets[1]) {
				t.Fatal("keySecrets: not the stream key of the Key")
			}
		} else if !bytes.Equal(m.inner[4:4+sha256.Size], secrets[2]) || !bytes.Equal(m.outer[4:4+sha256.Size], secrets[3]) {
			t.Fatal("keySecrets: not the HMAC states of the Key")
		}
		checkRedacted(t, k, "envelope.Key{REDACTED}", secrets)
	}
	var nilKey *Key
	if got := fmt.Sprint(nilKey); got != "<nil>" {
		t.Errorf("nil Key prints %q", got)
	}
}
