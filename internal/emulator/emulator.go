package emulator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ksse-go/ksse/internal/child"
)

// Region is the AWS region of the configurations [AWSConfig] returns.
const Region = "us-east-1"

// AccessKeyID and SecretAccessKey are the static credentials of the
// configurations [AWSConfig] returns. The emulators accept any.
//
// The secret is longer than the usual "test": SigV4 uses "AWS4"+secret as
// an HMAC key, and under GODEBUG=fips140=only crypto/hmac panics on keys
// shorter than 112 bits.
const (
	AccessKeyID     = "test"
	SecretAccessKey = "test-secret-access-key"
)

// RetryMaxAttempts is the number of attempts per call, the first included,
// of the retryer of [AWSConfig].
const RetryMaxAttempts = 5

// StartTimeout bounds how long Start waits for an emulator to answer.
const StartTimeout = 30 * time.Second

// ErrNotInstalled is wrapped by the error Start returns when the emulator
// or its interpreter cannot be found. An emulator that is installed but
// fails to start gives another error.
var ErrNotInstalled = errors.New("emulator not installed")

// An Emulator is a kind of server that this package can start: [Moto] or
// [Kinesalite].
type Emulator struct {
	name        string
	endpointEnv string
	installHint string
	start       func(context.Context) (*Server, error)
	ready       func(context.Context, *Server) error // nil: no check
}

// Moto is moto: KMS, Kinesis, Firehose and S3.
//
// Start runs `python3 -m moto.server` and waits until it answers HTTP.
// [PythonEnv] names another interpreter.
var Moto = &Emulator{
	name:        "moto",
	endpointEnv: MotoEndpointEnv,
	installHint: "install moto 5 for python3, or set " + MotoEndpointEnv,
	start:       startMoto,
	ready:       waitMoto,
}

// Kinesalite is kinesalite: Kinesis only, with the service's limits.
//
// scripts/test installs it into .ci-cache/kinesalite with `npm ci`, at the
// version pinned in .ci/kinesalite/package-lock.json. Start runs it with
// node. [KinesaliteDirEnv] and [NodeEnv] override where it looks.
var Kinesalite = &Emulator{
	name:        "kinesalite",
	endpointEnv: KinesaliteEndpointEnv,
	installHint: "run scripts/test, which installs it into .ci-cache/kinesalite",
	start:       startKinesalite,
}

// String returns the emulator's name, such as "moto".
func (e *Emulator) String() string { return e.name }

// InstallHint says how to install the emulator, for skip messages.
func (e *Emulator) InstallHint() string { return e.installHint }

// Start returns a running server of the emulator.
//
// If the emulator's endpoint variable (KSSE_MOTO_ENDPOINT or
// KSSE_KINESALITE_ENDPOINT) is set, Start starts nothing and returns a
// Server for that URL, once it answers. Otherwise it starts a child process
// on a free loopback port.
//
// ctx bounds only the start, which gives up after [StartTimeout] in any
// case. On failure the error includes the emulator's last output.
func (e *Emulator) Start(ctx context.Context) (*Server, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	ep := strings.TrimSpace(os.Getenv(e.endpointEnv))
	if ep == "" {
		return e.start(ctx)
	}
	u, err := url.Parse(ep)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("emulator: %s=%q is not an absolute URL", e.endpointEnv, ep)
	}
	s := &Server{url: strings.TrimRight(ep, "/")}
	if e.ready != nil {
		if err := e.ready(ctx, s); err != nil {
			return nil, fmt.Errorf("emulator: %s at %s=%s does not answer: %w", e.name, e.endpointEnv, s.url, err)
		}
	}
	return s, nil
}

// Server is a running emulator: a child process that Start started, or an
// external server named by an endpoint variable. Its methods are safe for
// concurrent use.
type Server struct {
	url  string
	proc *child.Process // nil for an external server
}

// URL returns the server's base URL, such as "http://127.0.0.1:41234",
// without a trailing slash.
func (s *Server) URL() string { return s.url }

// External reports whether the server was named by an endpoint variable.
func (s *Server) External() bool { return s.proc == nil }

// Output returns the last 64 KiB or so of what the process printed. It is
// empty for an external server.
func (s *Server) Output() string {
	if s.proc == nil {
		return ""
	}
	return s.proc.Output()
}

// Close kills the process and its process group, and waits for it to exit.
// It does nothing for an external server. Later calls return the first
// call's result.
func (s *Server) Close() error {
	if s.proc == nil {
		return nil
	}
	return s.proc.Close() // its errors name the emulator already
}

// AWSConfig returns [AWSConfig](s.URL()).
func (s *Server) AWSConfig() aws.Config { return AWSConfig(s.url) }

// AWSConfig returns an aws.Config for the emulator at url:
//
//   - region [Region], credentials [AccessKeyID] and [SecretAccessKey];
//   - BaseEndpoint url;
//   - the SDK's standard retryer, with [RetryMaxAttempts] attempts.
//
// It reads nothing from the environment or ~/.aws, so the developer's real
// AWS settings cannot leak into tests. It suits the KMS, Kinesis and
// Firehose clients as is. For S3, pass [S3Options]:
//
//	s3.NewFromConfig(cfg, emulator.S3Options)
func AWSConfig(url string) aws.Config {
	return aws.Config{
		Region:           Region,
		Credentials:      aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		BaseEndpoint:     aws.String(url),
		RetryMaxAttempts: RetryMaxAttempts,
		RetryMode:        aws.RetryModeStandard,
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = RetryMaxAttempts
			})
		},
	}
}

// S3Options sets path-style addressing ("http://host/bucket/key"). moto
// needs it because "bucket.127.0.0.1" does not resolve.
func S3Options(o *s3.Options) { o.UsePathStyle = true }

// UniqueName returns prefix, a hyphen and 12 random lowercase hex digits.
// That is a valid name for a Kinesis stream, a Firehose delivery stream
// and, for a lowercase prefix of at most 50 characters, an S3 bucket.
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
