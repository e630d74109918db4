// Package child runs a test emulator (moto, kinesalite) as a child process.
//
//   - The child gets its own process group, so stopping it stops whatever
//     it started.
//   - The end of its output is kept for error messages.
//   - On Linux it gets a parent-death signal. The kernel sends it when the
//     thread that started the child exits: in a Go program that does not
//     lock threads, when the process dies without calling Close (see
//     golang.org/issue/27505).
package child

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// OutputLimit is how much of a child's most recent output is kept.
const OutputLimit = 64 << 10

// killTimeout bounds how long Close waits for a killed child to exit.
const killTimeout = 10 * time.Second

// Process is a started child process. Its methods are safe for concurrent
// use.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *TailBuffer

	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result, valid once exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Start starts cmd as a child named name (used in error messages) in its
// own process group. Unless they are already set, cmd's standard output and
// error go to a [TailBuffer], which [Process.Output] reads. If cmd has a
// StdoutPipe, drain must read it to the end, writing what it does not
// consume to out: it runs before cmd.Wait, as os/exec requires.
func Start(name string, cmd *exec.Cmd, drain func(out io.Writer)) (*Process, error) {
	out := &TailBuffer{limit: OutputLimit}
	if cmd.Stdout == nil && drain == nil {
		cmd.Stdout = out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = out
	}
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		if drain != nil {
			drain(out)
		}
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Exited returns a channel that is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// WaitErr returns the result of waiting for the process. It is valid once
// [Process.Exited] is closed.
func (p *Process) WaitErr() error { return p.waitErr }

// Output returns the end of what the process printed.
func (p *Process) Output() string { return p.out.String() }

// Close kills the process group and waits for the process to exit. If the
// process had already exited, Close kills nothing (its process ID may have
// been reused: what it left running, if anything, stays; neither moto nor
// kinesalite starts processes of its own), and returns its error, if any,
// with the last lines of its output. Later calls return the first call's
// result.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		select {
		case <-p.exited:
			if p.waitErr != nil {
				p.closeErr = fmt.Errorf("%[1]s had already exited: %[2]v\n--- %[1]s output ---\n%[3]s", p.name, p.waitErr, LastLines(p.out.String(), 20))
			}
			return
		default:
		}
		if err := killProcess(p.cmd); err != nil {
			p.closeErr = fmt.Errorf("killing %s: %w", p.name, err)
		}
		select {
		case <-p.exited:
		case <-time.After(killTimeout):
			p.closeErr = errors.Join(p.closeErr, fmt.Errorf("%s did not exit within %v of being killed", p.name, killTimeout))
		}
	})
	return p.closeErr
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TailBuffer is an io.Writer that keeps the last bytes written to it, up to
// [OutputLimit]. It is safe for concurrent use.
type TailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

// Write appends p, dropping the oldest bytes beyond the limit.
func (b *TailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String returns what the buffer holds.
func (b *TailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
