// Package emulatortest gives tests a running emulator (see package
// emulator).
//
// [New] and [Shared] return a running server. When the emulator is not
// installed they skip the test. Under CI=true they fail it instead:
// integration tests must never be skipped in CI.
//
// A test binary that uses Shared may stop the shared servers at exit:
//
//	func TestMain(m *testing.M) { emulatortest.Main(m) }
//
// Without it the servers die with the test binary (on Linux, by the
// kernel's parent-death signal).
package emulatortest

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/ksse-go/ksse/internal/emulator"
)

// InCI reports whether the environment variable CI holds a true value
// ("true", "1", ...), as it does in the project's CI.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// New starts a server of e for tb alone and stops it when tb ends. With
// e's endpoint variable set, it uses that server instead.
func New(tb testing.TB, e *emulator.Emulator) *emulator.Server {
	tb.Helper()
	s, err := e.Start(context.Background())
	if err != nil {
		unavailable(tb, e, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("stopping %s: %v", e, err)
		}
	})
	return s
}

type started struct {
	once sync.Once
	srv  *emulator.Server
	err  error
}

var shared sync.Map // *emulator.Emulator -> *started

// Shared returns a server of e shared by all the tests of the test binary,
// starting it on first use. With e's endpoint variable set, it is that
// server. Tests sharing it should name their resources with
// emulator.UniqueName.
func Shared(tb testing.TB, e *emulator.Emulator) *emulator.Server {
	tb.Helper()
	v, _ := shared.LoadOrStore(e, new(started))
	st := v.(*started)
	st.once.Do(func() { st.srv, st.err = e.Start(context.Background()) })
	if st.err != nil {
		unavailable(tb, e, st.err)
	}
	return st.srv
}

// Main runs the tests, stops the servers [Shared] started, and exits with
// the tests' exit code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	shared.Range(func(k, v any) bool {
		if srv := v.(*started).srv; srv != nil {
			if err := srv.Close(); err != nil {
				os.Stderr.WriteString("emulatortest: stopping " + k.(*emulator.Emulator).String() + ": " + err.Error() + "\n")
			}
		}
		return true
	})
	os.Exit(code)
}

// unavailable ends tb for an emulator that could not start. It skips only
// when the emulator is not installed and CI is not set.
func unavailable(tb testing.TB, e *emulator.Emulator, err error) {
	tb.Helper()
	switch {
	case InCI():
		tb.Fatalf("%s could not start in CI (CI=true; integration tests must not be skipped): %v", e, err)
	case errors.Is(err, emulator.ErrNotInstalled):
		tb.Skipf("skipping: %s unavailable (%s): %v", e, e.InstallHint(), err)
	default:
		tb.Fatalf("%s could not start: %v", e, err)
	}
}
