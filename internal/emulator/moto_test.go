package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

// TestMotoStartClose starts a moto process of its own (ignoring
// KSSE_MOTO_ENDPOINT), checks that it answers, and that Close stops it.
func TestMotoStartClose(t *testing.T) {
	t.Setenv(emulator.MotoEndpointEnv, "")
	begin := time.Now()
	s := emulatortest.New(t, emulator.Moto)
	t.Logf("moto started at %s in %v", s.URL(), time.Since(begin).Round(time.Millisecond))
	if s.External() {
		t.Fatal("External() = true for a server Start started")
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q, want http://127.0.0.1:PORT", s.URL())
	}
	resp, err := http.Get(s.URL() + "/moto-api/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /moto-api/: %s", resp.Status)
	}
	if err := s.Reset(context.Background()); err != nil {
		t.Errorf("Reset: %v", err)
	}
	if !strings.Contains(s.Output(), "/moto-api/") {
		t.Errorf("Output() does not show the requests made; got:\n%s", s.Output())
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	if resp, err := client.Get(s.URL() + "/moto-api/"); err == nil {
		resp.Body.Close()
		t.Fatalf("moto still answers after Close: %s", resp.Status)
	}
}

// TestMotoEndpointEnv checks that Start uses the server named by
// KSSE_MOTO_ENDPOINT instead of starting one.
func TestMotoEndpointEnv(t *testing.T) {
	real := emulatortest.Shared(t, emulator.Moto)
	t.Setenv(emulator.MotoEndpointEnv, real.URL()+"/")
	s, err := emulator.Moto.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !s.External() || s.URL() != real.URL() {
		t.Errorf("Start with %s set: External()=%v URL()=%q, want true, %q", emulator.MotoEndpointEnv, s.External(), s.URL(), real.URL())
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of an external server: %v", err)
	}
	// The external server is still up.
	if err := real.Reset(context.Background()); err != nil && !real.External() {
		t.Errorf("server gone after closing an external Server: %v", err)
	}
}

func TestMotoEndpointEnvNotAnswering(t *testing.T) {
	t.Setenv(emulator.MotoEndpointEnv, "http://127.0.0.1:1")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := emulator.Moto.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), emulator.MotoEndpointEnv) {
		t.Fatalf("Start with a dead endpoint: err = %v, want an error naming %s", err, emulator.MotoEndpointEnv)
	}
}

func TestMotoNotInstalled(t *testing.T) {
	t.Setenv(emulator.MotoEndpointEnv, "")
	t.Setenv(emulator.PythonEnv, filepath.Join(t.TempDir(), "no-such-python"))
	_, err := emulator.Moto.Start(context.Background())
	if !errors.Is(err, emulator.ErrNotInstalled) {
		t.Fatalf("Start with a missing interpreter: err = %v, want ErrNotInstalled", err)
	}

	// An interpreter without the moto module.
	fake := writeScript(t, "#!/bin/sh\necho \"$0: No module named moto.server\" >&2\nexit 1\n")
	t.Setenv(emulator.PythonEnv, fake)
	_, err = emulator.Moto.Start(context.Background())
	if !errors.Is(err, emulator.ErrNotInstalled) {
		t.Fatalf("Start with an interpreter lacking moto: err = %v, want ErrNotInstalled", err)
	}
}

func TestMotoEarlyExitShowsOutput(t *testing.T) {
	t.Setenv(emulator.MotoEndpointEnv, "")
	fake := writeScript(t, "#!/bin/sh\necho 'something broke: marker-3141' >&2\nexit 3\n")
	t.Setenv(emulator.PythonEnv, fake)
	begin := time.Now()
	_, err := emulator.Moto.Start(context.Background())
	if err == nil {
		t.Fatal("Start succeeded with an interpreter that exits at once")
	}
	if errors.Is(err, emulator.ErrNotInstalled) {
		t.Errorf("err wraps ErrNotInstalled for a failing moto: %v", err)
	}
	if !strings.Contains(err.Error(), "marker-3141") || !strings.Contains(err.Error(), "exit") {
		t.Errorf("error does not show the process's exit and output: %v", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("Start took %v to notice the exit", d)
	}
}

func TestUniqueName(t *testing.T) {
	a, b := emulator.UniqueName("ksse"), emulator.UniqueName("ksse")
	if a == b || !strings.HasPrefix(a, "ksse-") || len(a) != len("ksse-")+12 {
		t.Errorf("UniqueName: %q, %q", a, b)
	}
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fake-python")
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}
