package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/ksse-go/ksse/internal/child"
)

// MotoEndpointEnv names a running moto, such as "http://127.0.0.1:5000",
// that [Moto] uses instead of starting one.
const MotoEndpointEnv = "KSSE_MOTO_ENDPOINT"

// PythonEnv names the Python interpreter that runs moto. The default is
// "python3".
const PythonEnv = "KSSE_PYTHON"

func startMoto(ctx context.Context) (*Server, error) {
	python := os.Getenv(PythonEnv)
	if python == "" {
		python = "python3"
	}
	if _, err := exec.LookPath(python); err != nil {
		return nil, fmt.Errorf("emulator: moto: %w: %v", ErrNotInstalled, err)
	}

	// The port is picked by binding :0 and closing it again, so another
	// process may take it before moto binds it. moto then exits at once,
	// and startMoto tries again with another port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startMotoProcess(ctx, python)
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

func startMotoProcess(ctx context.Context, python string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("emulator: moto: picking a free port: %w", err)
	}
	cmd := exec.Command(python, "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	// Unbuffered output, so that moto's last words are kept before it dies.
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	proc, err := child.Start("moto", cmd, nil)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			err = fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
		return nil, fmt.Errorf("emulator: moto: starting %s: %w", python, err)
	}
	s := &Server{url: "http://127.0.0.1:" + strconv.Itoa(port), proc: proc}

	if err := waitMoto(ctx, s); err != nil {
		_ = s.Close()
		output := proc.Output()
		switch {
		case strings.Contains(output, "No module named"):
			err = fmt.Errorf("%w (%s -m moto.server: %s)", ErrNotInstalled, python, lastLine(output))
		case strings.Contains(output, "Address already in use"):
			err = fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return nil, fmt.Errorf("emulator: moto did not start on port %d: %w\n--- moto output ---\n%s", port, err, child.LastLines(output, 40))
	}
	return s, nil
}

// waitMoto polls s until it answers GET /moto-api/ or ctx ends. For a child
// process it also gives up as soon as the process exits.
func waitMoto(ctx context.Context, s *Server) error {
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

// Reset calls moto's POST /moto-api/reset, which deletes every resource of
// every service. It is for moto only.
//
// Other test binaries may share a server named by KSSE_MOTO_ENDPOINT, so
// tests should prefer [UniqueName] to Reset.
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("emulator: moto reset: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("emulator: moto reset: HTTP %s: %s", resp.Status, body)
	}
	return nil
}

func lastLine(s string) string { return child.LastLines(s, 1) }
