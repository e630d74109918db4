//go:build unix

package child

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseKillsTheProcessGroup(t *testing.T) {
	// The shell starts a grandchild and prints its pid: Close must kill both.
	p, err := Start("sleeper", exec.Command("sh", "-c", "sleep 60 & echo $!; wait"), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the grandchild's pid", func() bool { return strings.HasSuffix(p.Output(), "\n") })
	pid, err := strconv.Atoi(strings.TrimSpace(p.Output()))
	if err != nil {
		t.Fatalf("output %q: %v", p.Output(), err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Close returned before the process exited")
	}
	waitFor(t, "the grandchild to die", func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseReportsAnEarlyExit(t *testing.T) {
	p, err := Start("quitter", exec.Command("sh", "-c", "echo last words >&2; exit 3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	err = p.Close()
	if err == nil {
		t.Fatal("Close after a failed exit returned nil")
	}
	for _, want := range []string{"quitter had already exited", "exit status 3", "last words"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Close error %q does not contain %q", err, want)
		}
	}
	if again := p.Close(); again == nil || again.Error() != err.Error() {
		t.Error("a second Close returned a different result")
	}
}

func TestTailBufferKeepsTheEnd(t *testing.T) {
	b := &TailBuffer{limit: 8}
	b.Write([]byte("0123456789"))
	b.Write([]byte("ab"))
	if got := b.String(); got != "456789ab" {
		t.Fatalf("got %q, want %q", got, "456789ab")
	}
	if got := LastLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Fatalf("LastLines = %q", got)
	}
}
