// Package kinesalitetest gives tests a kinesalite server (see package
// kinesalite). When kinesalite is not installed, [Shared] and [New] skip the
// test, unless CI is true, in which case they fail it. A test binary using
// Shared may stop the server at exit with [Main] from TestMain; otherwise it
// is killed when the binary exits.
package kinesalitetest

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/ksse-go/ksse/internal/kinesalite"
	"github.com/ksse-go/ksse/internal/motoserver/mototest"
)

// New starts a kinesalite server for tb alone and stops it when tb ends.
func New(tb testing.TB) *kinesalite.Server {
	tb.Helper()
	s, err := kinesalite.Start(context.Background())
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("stopping kinesalite: %v", err)
		}
	})
	return s
}

var shared struct {
	once sync.Once
	srv  *kinesalite.Server
	err  error
}

// Shared returns a kinesalite server shared by the tests of the test binary,
// starting it on first use. Tests sharing it should name their streams with
// motoserver.UniqueName.
func Shared(tb testing.TB) *kinesalite.Server {
	tb.Helper()
	shared.once.Do(func() {
		shared.srv, shared.err = kinesalite.Start(context.Background())
	})
	if shared.err != nil {
		unavailable(tb, shared.err)
	}
	return shared.srv
}

// Main runs the tests, stops the server [Shared] started, if any, and exits
// with the tests' exit code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			os.Stderr.WriteString("kinesalitetest: " + err.Error() + "\n")
		}
	}
	os.Exit(code)
}

func unavailable(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case mototest.InCI():
		tb.Fatalf("kinesalite could not start in CI (CI=true; integration tests must not be skipped): %v", err)
	case errors.Is(err, kinesalite.ErrNotInstalled):
		tb.Skipf("skipping: kinesalite unavailable (run scripts/test, which installs it into .ci-cache/kinesalite): %v", err)
	default:
		tb.Fatalf("kinesalite could not start: %v", err)
	}
}
