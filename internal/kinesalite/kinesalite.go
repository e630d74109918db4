// Package kinesalite starts a local kinesalite server
// (https://github.com/mhart/kinesalite), a Node.js Kinesis emulator that is
// stricter than moto about request validation: it checks field lengths and
// patterns the way Kinesis does, so it catches requests real Kinesis would
// reject (for example PutRecord data over 1 MiB, or an ExplicitHashKey
// outside [0, 2^128-1]).
//
// kinesalite is an npm package; scripts/test installs the version pinned in
// .ci/kinesalite/package-lock.json into .ci-cache/kinesalite with `npm ci`.
// [Start] runs it with the machine's node, listening on a free loopback
// port, and [Server.Close] kills it. If KSSE_KINESALITE_ENDPOINT is set,
// Start uses that server instead.
//
// The server speaks only Kinesis. Use motoserver.AWSConfig(s.URL()) (or
// [Server.AWSConfig]) to configure kinesis.NewFromConfig for it. Tests should
// use the kinesalitetest subpackage, which skips when kinesalite is not
// installed, except under CI=true, where it fails.
package kinesalite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ksse-go/ksse/internal/child"
	"github.com/ksse-go/ksse/internal/motoserver"
)

// EndpointEnv is the environment variable that, when set to the URL of a
// running kinesalite, makes [Start] use it instead of starting one.
const EndpointEnv = "KSSE_KINESALITE_ENDPOINT"

// DirEnv is the environment variable naming the npm prefix directory where
// kinesalite is installed (the directory holding node_modules/kinesalite).
// Without it, [Start] looks for .ci-cache/kinesalite in the enclosing Go
// module's root directory.
const DirEnv = "KSSE_KINESALITE_DIR"

// NodeEnv is the environment variable naming the node executable; it
// defaults to "node".
const NodeEnv = "KSSE_NODE"

// DefaultStartTimeout bounds how long [Start] waits for kinesalite to listen.
const DefaultStartTimeout = 30 * time.Second

// StreamDelay is how long kinesalite keeps a stream CREATING, DELETING or
// UPDATING. Real Kinesis takes seconds; the default of kinesalite is 500 ms.
const StreamDelay = 50 * time.Millisecond

// ErrNotInstalled is wrapped by the error [Start] returns when node or the
// kinesalite package cannot be found.
var ErrNotInstalled = errors.New("kinesalite is not installed")

// launcher starts kinesalite on 127.0.0.1 (its CLI would listen on every
// interface) on a port the kernel picks, and reports the port on stdout.
const launcher = `
const kinesalite = require(process.argv[1]);
const ms = Number(process.argv[2]);
const server = kinesalite({createStreamMs: ms, deleteStreamMs: ms, updateStreamMs: ms, shardLimit: 1000});
server.listen(0, '127.0.0.1', () => {
  console.log('KSSE_KINESALITE_LISTENING ' + server.address().port);
});
process.on('SIGTERM', () => process.exit(0));
`

// Server is a kinesalite server, either a child process started by [Start]
// or an external one named by KSSE_KINESALITE_ENDPOINT.
type Server struct {
	url string

	proc *child.Process // nil for an external server
}

// Start returns a running kinesalite server: the one named by
// KSSE_KINESALITE_ENDPOINT, or a new child process of `node` listening on
// a free port of 127.0.0.1. ctx bounds only the start. On failure the error
// includes kinesalite's last output.
func Start(ctx context.Context) (*Server, error) {
	if ep := strings.TrimSpace(os.Getenv(EndpointEnv)); ep != "" {
		u, err := url.Parse(ep)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("kinesalite: %s=%q is not an absolute URL", EndpointEnv, ep)
		}
		return &Server{url: strings.TrimRight(ep, "/")}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultStartTimeout)
	defer cancel()

	node := os.Getenv(NodeEnv)
	if node == "" {
		node = "node"
	}
	if _, err := exec.LookPath(node); err != nil {
		return nil, fmt.Errorf("kinesalite: %w: %v", ErrNotInstalled, err)
	}
	pkg, err := packageDir()
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(node, "-e", launcher, pkg, strconv.Itoa(int(StreamDelay/time.Millisecond)))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The launcher prints the port it listens on; the rest of its output
	// goes to the process's output buffer.
	port := make(chan string, 1)
	proc, err := child.Start("kinesalite", cmd, func(out io.Writer) {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if p, ok := strings.CutPrefix(line, "KSSE_KINESALITE_LISTENING "); ok && !found {
				found = true
				port <- p
				continue
			}
			_, _ = io.WriteString(out, line+"\n")
		}
		_, _ = io.Copy(out, stdout)
	})
	if err != nil {
		return nil, fmt.Errorf("kinesalite: starting %s: %w", node, err)
	}
	s := &Server{proc: proc}

	select {
	case p := <-port:
		s.url = "http://127.0.0.1:" + p
		return s, nil
	case <-proc.Exited():
		return nil, fmt.Errorf("kinesalite: node exited early: %v\n--- kinesalite output ---\n%s", proc.WaitErr(), child.LastLines(proc.Output(), 40))
	case <-ctx.Done():
		_ = s.Close()
		return nil, fmt.Errorf("kinesalite: not listening after waiting: %w\n--- kinesalite output ---\n%s", ctx.Err(), child.LastLines(proc.Output(), 40))
	}
}

// packageDir returns the directory of the installed kinesalite package.
func packageDir() (string, error) {
	prefix := os.Getenv(DirEnv)
	if prefix == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", fmt.Errorf("kinesalite: %w: %s is not set and %v", ErrNotInstalled, DirEnv, err)
		}
		prefix = filepath.Join(root, ".ci-cache", "kinesalite")
	}
	pkg := filepath.Join(prefix, "node_modules", "kinesalite")
	if _, err := os.Stat(filepath.Join(pkg, "package.json")); err != nil {
		return "", fmt.Errorf("kinesalite: %w in %s (install it with scripts/test, or: mkdir -p %[2]s && cp .ci/kinesalite/package*.json %[2]s && npm ci --prefix %[2]s)", ErrNotInstalled, prefix)
	}
	return pkg, nil
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod file.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// URL returns the server's base URL, such as "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// External reports whether the server was named by KSSE_KINESALITE_ENDPOINT.
func (s *Server) External() bool { return s.proc == nil }

// Output returns the end of what the kinesalite process printed.
func (s *Server) Output() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Output()
}

// AWSConfig returns motoserver.AWSConfig(s.URL()): region us-east-1, static
// test credentials, standard retries. Use it with kinesis.NewFromConfig.
func (s *Server) AWSConfig() aws.Config { return motoserver.AWSConfig(s.url) }

// Close kills the kinesalite process group and waits for it to exit. It does
// nothing for an external server, and may be called more than once.
func (s *Server) Close() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Close() // its errors name kinesalite already
}
