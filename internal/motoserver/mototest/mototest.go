// Package mototest gives tests a moto server (see package motoserver).
//
// [New] and [Shared] return a running server. When moto is not installed
// they skip the test, unless the environment variable CI is true, in which
// case they fail it: integration tests must never be skipped in CI. A test
// binary that uses [Shared] may stop the shared server at exit with [Main]:
//
//	func TestMain(m *testing.M) { mototest.Main(m) }
//
// Without it the server is killed when the test binary exits (on Linux, by
// the kernel's parent-death signal).
package mototest

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/ksse-go/ksse/internal/motoserver"
)

// InCI reports whether the environment variable CI holds a true value
// ("true", "1", ...), as it does in the project's CI.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// New starts a moto server for tb alone (or uses the one named by
// KSSE_MOTO_ENDPOINT) and stops it when tb ends.
func New(tb testing.TB) *motoserver.Server {
	tb.Helper()
	s, err := motoserver.Start(context.Background())
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("stopping moto: %v", err)
		}
	})
	return s
}

var shared struct {
	once sync.Once
	srv  *motoserver.Server
	err  error
}

// Shared returns a moto server shared by all the tests of the test binary
// (or the one named by KSSE_MOTO_ENDPOINT), starting it on first use. The
// server lives until [Main] stops it or the binary exits; tests sharing it
// should name their resources with motoserver.UniqueName.
func Shared(tb testing.TB) *motoserver.Server {
	tb.Helper()
	shared.once.Do(func() {
		shared.srv, shared.err = motoserver.Start(context.Background())
	})
	if shared.err != nil {
		unavailable(tb, shared.err)
	}
	return shared.srv
}

// Main runs the tests and then stops the server started by [Shared], if
// any, before exiting with the tests' exit code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			os.Stderr.WriteString("mototest: stopping moto: " + err.Error() + "\n")
		}
	}
	os.Exit(code)
}

// unavailable ends tb for a moto that could not start: in CI, or when moto
// is installed but failed, the test fails; otherwise it is skipped.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case InCI():
		tb.Fatalf("moto server could not start in CI (CI=true; integration tests must not be skipped): %v", err)
	case errors.Is(err, motoserver.ErrNotInstalled):
		tb.Skipf("skipping: moto server unavailable (install moto 5 for python3, or set %s): %v", motoserver.EndpointEnv, err)
	default:
		tb.Fatalf("moto server could not start: %v", err)
	}
}
