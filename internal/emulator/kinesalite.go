package emulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ksse-go/ksse/internal/child"
)

// KinesaliteEndpointEnv names a running kinesalite that [Kinesalite] uses
// instead of starting one.
const KinesaliteEndpointEnv = "KSSE_KINESALITE_ENDPOINT"

// KinesaliteDirEnv names the npm prefix where kinesalite is installed (the
// directory holding node_modules/kinesalite). The default is
// .ci-cache/kinesalite in the enclosing Go module's root.
const KinesaliteDirEnv = "KSSE_KINESALITE_DIR"

// NodeEnv names the node executable. The default is "node".
const NodeEnv = "KSSE_NODE"

// kinesaliteStreamDelay is how long kinesalite keeps a stream CREATING,
// DELETING or UPDATING. Real Kinesis takes seconds; kinesalite's default
// is 500 ms.
const kinesaliteStreamDelay = 50 * time.Millisecond

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

func startKinesalite(ctx context.Context) (*Server, error) {
	node := os.Getenv(NodeEnv)
	if node == "" {
		node = "node"
	}
	if _, err := exec.LookPath(node); err != nil {
		return nil, fmt.Errorf("emulator: kinesalite: %w: %v", ErrNotInstalled, err)
	}
	pkg, err := packageDir()
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(node, "-e", launcher, pkg, strconv.Itoa(int(kinesaliteStreamDelay/time.Millisecond)))
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
		return nil, fmt.Errorf("emulator: kinesalite: starting %s: %w", node, err)
	}
	s := &Server{proc: proc}

	select {
	case p := <-port:
		s.url = "http://127.0.0.1:" + p
		return s, nil
	case <-proc.Exited():
		return nil, fmt.Errorf("emulator: kinesalite: node exited early: %v\n--- kinesalite output ---\n%s", proc.WaitErr(), child.LastLines(proc.Output(), 40))
	case <-ctx.Done():
		_ = s.Close()
		return nil, fmt.Errorf("emulator: kinesalite: not listening after waiting: %w\n--- kinesalite output ---\n%s", ctx.Err(), child.LastLines(proc.Output(), 40))
	}
}

// packageDir returns the directory of the installed kinesalite package.
func packageDir() (string, error) {
	prefix := os.Getenv(KinesaliteDirEnv)
	if prefix == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", fmt.Errorf("emulator: kinesalite: %w: %s is not set and %v", ErrNotInstalled, KinesaliteDirEnv, err)
		}
		prefix = filepath.Join(root, ".ci-cache", "kinesalite")
	}
	pkg := filepath.Join(prefix, "node_modules", "kinesalite")
	if _, err := os.Stat(filepath.Join(pkg, "package.json")); err != nil {
		return "", fmt.Errorf("emulator: kinesalite: %w in %s (install it with scripts/test, or: mkdir -p %[2]s && cp .ci/kinesalite/package*.json %[2]s && npm ci --prefix %[2]s)", ErrNotInstalled, prefix)
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
