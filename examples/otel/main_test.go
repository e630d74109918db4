package main

import (
	"strings"
	"testing"
)

// TestRun checks that the OpenTelemetry reader collects ksse's instruments
// and span through the smithy-go adapters.
func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ksse.records.encrypted [{"ksse.stream":"kinesis:orders"}] = 3`,
		`ksse.records.decrypted [{"ksse.stream":"kinesis:orders"}] = 3`,
		`ksse.records.rejected [{"ksse.reason":"not_encrypted"} {"ksse.stream":"kinesis:orders"}] = 1`,
		`ksse.kms.calls [{"kms.operation":"Decrypt"} {"ksse.result":"ok"}] = 1`,
		`ksse.cache.misses [{"ksse.side":"consumer"}] = 1`,
		`span: ksse.DecryptBatch`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
}
