package kssefirehose_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/internal/redacttest"
	"github.com/ksse-go/ksse/kssefirehose"
	"github.com/ksse-go/ksse/record"
)

// keyRecorder is a KMS that keeps a copy of every data key it generates.
type keyRecorder struct {
	*kmsfake.KMS
	mu   sync.Mutex
	keys []*kms.GenerateDataKeyOutput
}

func (r *keyRecorder) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	out, err := r.KMS.GenerateDataKey(ctx, in, optFns...)
	if err == nil {
		r.mu.Lock()
		r.keys = append(r.keys, &kms.GenerateDataKeyOutput{Plaintext: bytes.Clone(out.Plaintext), CiphertextBlob: bytes.Clone(out.CiphertextBlob)})
		r.mu.Unlock()
	}
	return out, err
}

// TestReaderPrintsRedacted: a Reader, which holds a Decryptor, printed with
// any fmt verb or logged with log/slog, shows none of the key material of
// the Decryptor.
func TestReaderPrintsRedacted(t *testing.T) {
	ctx := context.Background()
	k := &keyRecorder{KMS: kmsfake.New()}
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	env, err := kssefirehose.Encrypt(ctx, enc, "clicks", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := kssefirehose.NewReader(dec, "clicks", bytes.NewReader(append(env, env...)))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := r.Next(ctx); err != nil || string(d.Data) != "payload" {
		t.Fatalf("Next: %q, %v", d.Data, err)
	}
	if len(k.keys) != 1 {
		t.Fatalf("%d data keys generated, want 1", len(k.keys))
	}
	// "firehose:clicks" is the stream's associated data.
	secrets := redacttest.Secrets(t, k.keys[0].Plaintext, k.keys[0].CiphertextBlob, "firehose:clicks")
	redacttest.Check(t, r, "kssefirehose.Reader{REDACTED}", secrets)
	var nr *kssefirehose.Reader
	if got := fmt.Sprint(nr); got != "<nil>" {
		t.Errorf("nil Reader prints %q", got)
	}
}
