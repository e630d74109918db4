package record_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/internal/redacttest"
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

// TestPrintsRedacted: an Encryptor or a Decryptor holding a data key,
// printed with any fmt verb or logged with log/slog, shows none of its key
// material.
func TestPrintsRedacted(t *testing.T) {
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
	r, err := enc.Encrypt(ctx, "orders", "pk", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := dec.Decrypt(ctx, "orders", r.Data); err != nil || string(d.Data) != "payload" {
		t.Fatalf("Decrypt: %q, %v", d.Data, err)
	}
	if len(k.keys) != 1 {
		t.Fatalf("%d data keys generated, want 1", len(k.keys))
	}
	const ad = "kinesis:orders" // the stream's associated data
	// The data key recorded, bound to ad, is the one in use.
	e, _, err := envelope.Parse(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	same, err := envelope.NewKey(k.keys[0].Plaintext, k.keys[0].CiphertextBlob, []byte(ad))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := same.Open(nil, &e); err != nil {
		t.Fatalf("the recorded data key does not open the record: %v", err)
	}
	secrets := redacttest.Secrets(t, k.keys[0].Plaintext, k.keys[0].CiphertextBlob, ad)
	redacttest.Check(t, enc, "record.Encryptor{REDACTED}", secrets)
	redacttest.Check(t, dec, "record.Decryptor{REDACTED}", secrets)
	var ne *record.Encryptor
	var nd *record.Decryptor
	if got := fmt.Sprint(ne, nd); got != "<nil> <nil>" {
		t.Errorf("nil Encryptor and Decryptor print %q", got)
	}
}
