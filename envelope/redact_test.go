package envelope

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
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

// printVerbs are the fmt formats a Key is printed with in the redaction
// tests.
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

// keySecrets returns the key material of k and what it comes from: the data
// key and the stream key.
func keySecrets(t *testing.T, k *Key, dataKey, wrapped, ad []byte) [][]byte {
	t.Helper()
	streamKey, err := hkdf.Key(sha256.New, dataKey, wrapped, labelStreamKey+string(ad), sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{dataKey, streamKey}
	m := k.m.Load()
	for _, m := range [][]byte{m.inner, m.outer, m.prk} {
		if len(m) > 0 {
			secrets = append(secrets, bytes.Clone(m))
		}
	}
	if len(secrets) < 3 {
		t.Fatal("no key material")
	}
	return secrets
}

// printed returns v as fmt and log/slog show it, by format.
func printed(v any) map[string]string {
	outs := make(map[string]string)
	for _, verb := range printVerbs {
		outs[verb] = fmt.Sprintf(verb, v)
	}
	outs["Sprint"] = fmt.Sprint(v)
	outs["Sprintln"] = fmt.Sprintln(v)
	outs["in a struct %+v"] = fmt.Sprintf("%+v", struct{ K any }{v})
	outs["in a slice %#v"] = fmt.Sprintf("%#v", []any{v})
	outs["Errorf %w"] = fmt.Errorf("wrapped %v: %w", v, fmt.Errorf("%+v", v)).Error()
	for name, h := range map[string]func(*bytes.Buffer) slog.Handler{
		"slog text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"slog JSON": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		l := slog.New(h(&buf))
		l.Info("msg", "key", v)
		l.Info("msg", slog.Any("key", v), slog.Group("g", "key", v))
		l.With("key", v).Info("msg")
		outs[name] = buf.String()
	}
	j, _ := json.Marshal(v)
	outs["json"] = string(j)
	return outs
}

// TestKeyPrintsRedacted: a Key, its pointer or a copy, printed with any
// verb or logged with log/slog, shows none of its key material.
func TestKeyPrintsRedacted(t *testing.T) {
	dataKey := bytes.Repeat([]byte{0x5a, 0x17, 0xc3, 0x08}, KeySize/4)
	wrapped, ad := []byte("wrapped-key"), []byte("kinesis:orders")
	for _, fips := range []bool{false, true} {
		k, err := newKey(dataKey, wrapped, ad, fips)
		if err != nil {
			t.Fatal(err)
		}
		secrets := keySecrets(t, k, dataKey, wrapped, ad)
		// A copy of the Key, which fmt prints field by field: made with
		// reflect, as go vet rejects copying a Key.
		copied := reflect.ValueOf(k).Elem().Interface()
		for what, v := range map[string]any{"pointer": k, "copy": copied} {
			for format, out := range printed(v) {
				if s := leak(out, secrets...); s != "" {
					t.Errorf("fips %v: %s printed with %s shows %s: %s", fips, what, format, s, out)
				}
			}
		}
		for format, out := range printed(k) {
			if format != "json" && !strings.Contains(out, "REDACTED") {
				t.Errorf("fips %v: pointer printed with %s is not the redacted text: %s", fips, format, out)
			}
		}
	}
	var nilKey *Key
	if got := fmt.Sprint(nilKey); got != "<nil>" {
		t.Errorf("nil Key prints %q", got)
	}
}
