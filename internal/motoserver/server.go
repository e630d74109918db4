package motoserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/ksse-go/ksse/internal/child"
)

// EndpointEnv is the environment variable that, when set to the URL of a
// running moto server (such as "http://127.0.0.1:5000"), makes [Start] use
// that server instead of starting its own.
const EndpointEnv = "KSSE_MOTO_ENDPOINT"

// PythonEnv is the environment variable that names the Python interpreter
// [Start] runs moto with; it defaults to "python3".
const PythonEnv = "KSSE_PYTHON"

// DefaultStartTimeout bounds how long [Start] waits for moto to answer when
// the context it is given has no earlier deadline.
const DefaultStartTimeout = 30 * time.Second

// ErrNotInstalled is wrapped by the error [Start] returns when the Python
// interpreter cannot be found or the moto module cannot be imported, as
// opposed to moto being installed but failing to start.
var ErrNotInstalled = errors.New("moto is not installed")

// Server is a moto server: either a child process started by [Start] or an
// external one named by KSSE_MOTO_ENDPOINT. Its methods are safe for
// concurrent use.
type Server struct {
	url string

	proc *child.Process // nil for an external server
}

// Start returns a running moto server. If KSSE_MOTO_ENDPOINT is set, it
// returns a Server for that URL, once the server there answers; otherwise it
// starts `python3 -m moto.server -H 127.0.0.1 -p PORT` on a free loopback
// port and waits until it answers HTTP. ctx bounds only the start (which
// gives up after [DefaultStartTimeout] in any case); the process runs until
// [Server.Close]. On failure the error includes moto's last output.
func Start(ctx context.Context) (*Server, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultStartTimeout)
	defer cancel()

	if ep := strings.TrimSpace(os.Getenv(EndpointEnv)); ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("motoserver: %s=%q is not an absolute URL", EndpointEnv, ep)
		}
		s := &Server{url: strings.TrimRight(ep, "/")}
		if err := s.waitReady(ctx); err != nil {
			return nil, fmt.Errorf("motoserver: moto at %s=%s does not answer: %w", EndpointEnv, s.url, err)
		}
		return s, nil
	}

	python := os.Getenv(PythonEnv)
	if python == "" {
		python = "python3"
	}
	if _, err := exec.LookPath(python); err != nil {
		return nil, fmt.Errorf("motoserver: %w: %v", ErrNotInstalled, err)
	}

	// The port is picked by binding :0 and closing it again, so another
	// process may take it before moto binds it; moto then exits at once,
	// and Start tries again with another port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startProcess(ctx, python)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func startProcess(ctx context.Context, python string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("motoserver: picking a free port: %w", err)
	}
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	// Unbuffered output, so that moto's last words are kept before it dies.
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	proc, err := child.Start("moto", cmd, nil)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
		return nil, fmt.Errorf("motoserver: starting %s: %w", python, err)
	}
	s := &Server{url: "http://127.0.0.1:" + strconv.Itoa(port), proc: proc}

	if err := s.waitReady(ctx); err != nil {
		_ = s.Close()
		output := proc.Output()
		switch {
		case strings.Contains(output, "No module named"):
			err = fmt.Errorf("%w (%s -m moto.server: %s)", ErrNotInstalled, python, lastLine(output))
		case strings.Contains(output, "Address already in use"):
			err = fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return nil, fmt.Errorf("motoserver: moto did not start on port %d: %w\n--- moto output ---\n%s", port, err, child.LastLines(output, 40))
	}
	return s, nil
}

// waitReady polls the server until it answers GET /moto-api/ or ctx ends.
// For a child process it also gives up as soon as the process exits.
func (s *Server) waitReady(ctx context.Context) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	delay := 20 * time.Millisecond
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/moto-api/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				// The port may have been answered by someone else's server
				// while ours failed to bind it.
				if s.proc != nil {
					select {
					case <-s.proc.Exited():
						return fmt.Errorf("moto exited: %v", s.proc.WaitErr())
					default:
					}
				}
				return nil
			}
			err = fmt.Errorf("GET /moto-api/: HTTP %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case <-s.exitedOrNil():
			return fmt.Errorf("moto exited early: %v", s.proc.WaitErr())
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

// exitedOrNil returns a channel that is closed when the child process exits,
// or nil (blocking forever in a select) for an external server.
func (s *Server) exitedOrNil() <-chan struct{} {
	if s.proc == nil {
		return nil
	}
	return s.proc.Exited()
}

// URL returns the server's base URL, such as "http://127.0.0.1:41234",
// without a trailing slash.
func (s *Server) URL() string { return s.url }

// External reports whether the server was named by KSSE_MOTO_ENDPOINT rather
// than started by this process.
func (s *Server) External() bool { return s.proc == nil }

// Output returns the last 64 KiB or so of what the moto process printed
// (empty for an external server).
func (s *Server) Output() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Output()
}

// Close stops the moto process and everything in its process group, and
// waits for it to exit. For an external server it does nothing. Close may be
// called more than once; later calls return the first call's result.
func (s *Server) Close() error {
	if s.proc == nil {
		return nil
	}
	if err := s.proc.Close(); err != nil {
		return fmt.Errorf("motoserver: %w", err)
	}
	return nil
}

// Reset calls moto's POST /moto-api/reset, which deletes every resource in
// every emulated service. A server named by KSSE_MOTO_ENDPOINT may be shared
// by other test binaries running at the same time, so tests should prefer
// unique resource names to Reset.
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("motoserver: reset: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("motoserver: reset: HTTP %s: %s", resp.Status, body)
	}
	return nil
}

// UniqueName returns prefix followed by a hyphen and 12 random lowercase hex
// digits, which is a valid name for a Kinesis stream, a Firehose delivery
// stream and (for a lowercase prefix of at most 50 characters) an S3 bucket.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLine(s string) string { return child.LastLines(s, 1) }
