// Package redacttest checks that values holding key material print none of
// it. The redaction tests of envelope, keycache, record and kssefirehose
// use it.
//
// It imports the standard library only, so that envelope's own tests can
// import it.
package redacttest

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

// printVerbs are the fmt formats used by the redaction tests.
var printVerbs = []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%20v", "%-8s", "%.3s", "% x"}

// Leak returns a description of the first secret that out shows, in raw,
// hexadecimal, decimal, Go-syntax, quoted or base64 form, as a run of 8
// bytes at any offset; or "" if it shows none.
func Leak(out string, secrets ...[]byte) string {
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

// Secrets returns what an envelope.Key made from dataKey, wrapped and ad
// must never show, computed as FORMAT.md says: the data key, the stream key
// (the key material in FIPS mode) and the chaining values of the two
// HMAC-SHA256 states precomputed from it (the rest of a marshaled state is
// a constant prefix, an empty block and the length).
func Secrets(t *testing.T, dataKey, wrapped []byte, ad string) [][]byte {
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

// Check checks that v, a pointer to a type that holds key
// material, and a copy of what it points to, print none of secrets, and
// that v prints as want.
func Check(t *testing.T, v any, want string, secrets [][]byte) {
	t.Helper()
	// A copy of the value, which fmt prints field by field without its
	// methods: made with reflect, as go vet rejects copying a lock.
	copied := reflect.ValueOf(v).Elem().Interface()
	for what, x := range map[string]any{"pointer": v, "copy": copied} {
		for format, out := range printed(x) {
			if s := Leak(out, secrets...); s != "" {
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
