// Command ksse encrypts, sends, reads and decrypts Kinesis records with ksse
// envelopes (see FORMAT.md), and runs an end-to-end demonstration.
//
// Usage:
//
//	ksse put     --stream S --key-id K [--partition-key P] < LINES
//	ksse tail    --stream S (--key-arn ARN... | --any-key) [--from trim-horizon|latest] [--limit N] [--allow-plaintext] [--follow]
//	ksse decrypt --stream S (--key-arn ARN... | --any-key) [--firehose] [FILE]
//	ksse inspect [FILE]
//	ksse demo    [--key-id K] [--records N]
//
// Every subcommand takes --help. Help asked for (ksse help, ksse --help,
// ksse COMMAND --help) is printed on standard output with exit status 0.
//
// # Keys
//
// put --key-id names the KMS key to encrypt under, in any form KMS takes (key
// ID, key ARN, alias name, alias ARN). tail and decrypt accept only records
// whose data key is of a key they trust: each --key-arn (repeatable) names
// one, as a key ARN; a key ID or alias is resolved to its key ARN with KMS
// DescribeKey before reading, and one KMS does not know is an error. Without
// --key-arn they need --any-key, which trusts any key the credentials can
// decrypt with and prints a warning: records are then only as authentic as
// the credentials are narrow. Neither is a usage error.
//
// # AWS configuration
//
// ksse reads the standard AWS configuration, as the AWS CLI and SDKs do:
// region (AWS_REGION, AWS_PROFILE, ~/.aws/config), credentials (environment,
// shared files, SSO, instance roles) and endpoints (AWS_ENDPOINT_URL for every
// service, AWS_ENDPOINT_URL_KINESIS and AWS_ENDPOINT_URL_KMS for one). It has
// no endpoint flags of its own. To use a local emulator such as moto:
//
//	AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
//	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test-secret-access-key \
//	ksse tail --stream orders
//
// ksse demo needs none of it: with no endpoint configured and no --key-id it
// starts an embedded default (moto for Kinesis, the project's test KMS for
// KMS).
//
// # Output
//
// tail and decrypt print one JSON object per record on standard output:
//
//	{"shardId":"shardId-000000000001","sequenceNumber":"4959…","partitionKey":"customer-7","data":"hello","encryptionType":"KMS"}
//
// data is the payload as text when it is valid UTF-8; otherwise it is base64
// (standard encoding) and the object has "dataEncoding":"base64".
// encryptionType is KMS for a decrypted record and NONE for a plaintext record
// passed through with --allow-plaintext. decrypt prints "index" (the record's
// position in the input, from 0) instead of shardId and sequenceNumber.
// Diagnostics, summaries and progress go to standard error.
//
// A record that fails to decrypt is never printed, not even in part: it is
// reported on standard error (position, shard and sequence number, reason),
// the other records are printed, and the exit status is 1.
//
// # Exit status
//
//	0  success
//	1  runtime failure: an AWS or KMS error, a record that failed to
//	   decrypt or authenticate, malformed input
//	2  usage error: unknown subcommand or flag, missing or invalid argument
//
// Error messages start with "ksse SUBCOMMAND: ".
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// A command is a subcommand of ksse.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

var commands = []command{
	{"put", "encrypt lines of standard input and send them as records", cmdPut},
	{"tail", "read every shard of a stream and print decrypted records", cmdTail},
	{"decrypt", "decrypt a file of concatenated envelopes (a Firehose S3 object, a record)", cmdDecrypt},
	{"inspect", "print the header fields of envelopes without decrypting", cmdInspect},
	{"demo", "encrypt, send, read back and decrypt records end to end", cmdDemo},
}

// cli is what a subcommand runs with.
type cli struct {
	name   string // "ksse put"
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// warnf prints a diagnostic line on standard error, prefixed with the
// subcommand's name.
func (c *cli) warnf(format string, args ...any) {
	fmt.Fprintf(c.stderr, c.name+": "+format+"\n", args...)
}

// loadConfig loads the standard AWS configuration.
func (c *cli) loadConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithAppID("ksse-cli"))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region configured: set AWS_REGION or a profile's region")
	}
	return cfg, nil
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// errReported is returned by a subcommand that has already reported its
// failure on standard error: exit status 1, nothing more printed.
var errReported = errors.New("failure already reported")

// run runs ksse with the arguments args (without the program name) and
// returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		topUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, stdin, stdout, stderr)
		}
		topUsage(stdout) // asked for: on standard output, for a pager
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name != name {
			continue
		}
		c := &cli{name: "ksse " + name, stdin: stdin, stdout: stdout, stderr: stderr}
		err := cmd.run(ctx, c, args[1:])
		var ue *usageError
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.As(err, &ue):
			c.warnf("%s", ue.msg)
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", c.name)
			return exitUsage
		case errors.Is(err, errReported):
			return exitFailure
		default:
			c.warnf("%v", err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "ksse: unknown command %q\n", name)
	topUsage(stderr)
	return exitUsage
}

func topUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`Usage: ksse COMMAND [FLAGS] [ARGS]

ksse encrypts Kinesis records on the client with KMS data keys (the
client-side counterpart of Kinesis server-side encryption), sends and reads
them, and decrypts what Kinesis or Firehose delivered.

Commands:
`)
	for _, cmd := range commands {
		fmt.Fprintf(&b, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	b.WriteString(`
Run 'ksse COMMAND --help' for the flags of a command.

AWS configuration is the standard one (AWS_REGION, AWS_PROFILE, credentials,
AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_KMS, ~/.aws).
'ksse demo' needs none: without an endpoint or --key-id it starts an
embedded default (moto for Kinesis, an in-process test KMS).

Exit status: 0 success; 1 runtime failure (AWS, KMS, a record that fails to
decrypt, malformed input); 2 usage error.
`)
	io.WriteString(w, b.String())
}

// flagSet is the flag set of a subcommand, with its help.
type flagSet struct {
	*flag.FlagSet
	help func() // prints the usage (synopsis, description, flags) on standard output
}

// newFlagSet returns the flag set of a subcommand. Asked for its help
// (--help, -h), it prints its usage on standard output; a flag it cannot
// parse is a usage error, reported in one line like the others.
func newFlagSet(c *cli, synopsis, description string) *flagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	// The flag package prints parse errors, and then the usage, on the
	// output: parseArgs returns the errors instead, and prints the usage
	// only for --help.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	help := func() {
		fmt.Fprintf(c.stdout, "Usage: %s %s\n\n%s\n", c.name, synopsis, strings.TrimSpace(description))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(c.stdout, "\nFlags:\n")
			fs.SetOutput(c.stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
		fmt.Fprintf(c.stdout, "\nExit status: 0 success, 1 runtime failure, 2 usage error.\n")
	}
	return &flagSet{FlagSet: fs, help: help}
}

// parseArgs parses args with fs, allowing flags after positional arguments
// ("decrypt FILE --stream S"), and returns the positional arguments.
// Everything after "--" is positional. For --help it prints the usage and
// returns flag.ErrHelp; a flag error is a *usageError.
func parseArgs(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }

func (s *stringsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// openInput opens the FILE argument of decrypt and inspect, buffered:
// standard input when there is none or it is "-".
func openInput(c *cli, pos []string) (io.Reader, func(), error) {
	switch {
	case len(pos) > 1:
		return nil, nil, usagef("too many arguments: want at most one FILE")
	case len(pos) == 0 || pos[0] == "-":
		return bufio.NewReaderSize(c.stdin, 64<<10), func() {}, nil
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return nil, nil, err
	}
	return bufio.NewReaderSize(f, 64<<10), func() { f.Close() }, nil
}
