package kmsfake_test

import (
	"crypto/fips140"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFIPS140Only runs the tests that encrypt, in process and through the
// SDK, again in a child process with GODEBUG=fips140=only, where
// non-approved cryptography fails.
func TestFIPS140Only(t *testing.T) {
	if os.Getenv("KMSFAKE_FIPS_CHILD") == "1" {
		require.True(t, fips140.Enforced(), "the child must run with fips140=only")
		return
	}
	if fips140.Enforced() {
		t.Skip("the whole test binary runs with fips140=only")
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.v",
		"-test.run=^(TestFIPS140Only|TestRoundTrip|TestEncryptionContext|TestServerRetries|Example.*)$")
	godebug := "fips140=only"
	if v := os.Getenv("GODEBUG"); v != "" {
		godebug = v + "," + godebug
	}
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug, "KMSFAKE_FIPS_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, name := range []string{"TestFIPS140Only", "TestRoundTrip/http", "TestEncryptionContext/inprocess", "TestServerRetries", "Example"} {
		require.Contains(t, string(out), "--- PASS: "+name, "%s", out)
	}
	require.False(t, strings.Contains(string(out), "--- SKIP"), "%s", out)
}
