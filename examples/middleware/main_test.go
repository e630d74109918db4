package main

import (
	"flag"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
)

// TestExample runs the example against moto, as its doc comment says to.
func TestExample(t *testing.T) {
	out := runMain(t, emulatortest.New(t, emulator.Moto), "-stream", emulator.UniqueName("ksse-example"))
	require.Contains(t, out, "put 2 records, 0 failed\n")
	require.Contains(t, out, `customer-42: {"order":1,"amount":12.5} (KMS)`)
	require.Contains(t, out, `customer-7: {"order":2,"amount":3} (KMS)`)
}

// runMain runs main with args and the SDK's standard configuration pointed
// at srv through the environment, and returns its standard output.
func runMain(t *testing.T, srv *emulator.Server, args ...string) string {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": srv.URL(), "AWS_REGION": emulator.Region,
		"AWS_ACCESS_KEY_ID": emulator.AccessKeyID, "AWS_SECRET_ACCESS_KEY": emulator.SecretAccessKey,
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	oldArgs, oldStdout, oldFlags := os.Args, os.Stdout, flag.CommandLine
	defer func() { os.Args, os.Stdout, flag.CommandLine = oldArgs, oldStdout, oldFlags }()
	os.Args = append([]string{"example"}, args...)
	// main defines its flags: a fresh set, so that the test can run again
	// in the same process (go test -count=N).
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	r, w, err := os.Pipe()
	require.NoError(t, err)
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	main()
	w.Close()
	out := <-done
	t.Logf("output:\n%s", out)
	return out
}
