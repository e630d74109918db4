package main

import (
	"bytes"
	"crypto/fips140"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckedIn regenerates every vector in memory and requires the files in
// envelope/testdata to be exactly those bytes, with no stale vector files: the
// generator is deterministic and the checked-in vectors are its output.
func TestCheckedIn(t *testing.T) {
	var want map[string][]byte
	// The generator seals with AES-GCM and explicit nonces, which
	// GODEBUG=fips140=only refuses; it is test tooling, not the module.
	fips140.WithoutEnforcement(func() { want = files() })

	const testdata = "../../testdata"
	got, err := filepath.Glob(filepath.Join(testdata, vectorsDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, filepath.Join(testdata, pinnedFile))
	var names []string
	for _, p := range got {
		rel, _ := filepath.Rel(testdata, p)
		names = append(names, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[rel]
		switch {
		case !ok:
			t.Errorf("%s is not a vector of vecgen: stale file (go run ./envelope/internal/vecgen removes it)", rel)
		case !bytes.Equal(b, w):
			t.Errorf("%s differs from what vecgen writes: run go run ./envelope/internal/vecgen (never for v1-pinned.txt)", rel)
		}
	}
	for name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("%s missing: run go run ./envelope/internal/vecgen", name)
		}
	}
	if len(want) < 50 {
		t.Errorf("only %d vectors", len(want))
	}
}

// TestDeterministic requires two runs of the generator to agree.
func TestDeterministic(t *testing.T) {
	var a, b map[string][]byte
	fips140.WithoutEnforcement(func() { a, b = files(), files() })
	if len(a) != len(b) {
		t.Fatalf("%d vs %d files", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Errorf("%s differs between two runs", k)
		}
	}
}

// TestParseStage checks the generator's own reading of the parsing rules on
// a few inputs, since the stage of every negative vector comes from it.
func TestParseStage(t *testing.T) {
	var env []byte
	fips140.WithoutEnforcement(func() {
		env = newRecord("t", "kinesis:s", 3, []byte("pk"), []byte("x")).seal()
	})
	for _, tc := range []struct {
		b    []byte
		want string
	}{
		{env, ""},
		{env[:len(env)-1], "parse"},
		{append(slices.Clone(env), 0), "trailing"},
		{nil, "parse"},
		{env[:headerSize], "parse"},
	} {
		if got := parseStage(tc.b); got != tc.want {
			t.Errorf("parseStage(%d bytes) = %q, want %q", len(tc.b), got, tc.want)
		}
	}
}
