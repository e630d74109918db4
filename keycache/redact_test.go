package keycache_test

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
	"github.com/ksse-go/ksse/keycache"
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

// TestPrintsRedacted: a Producer or a Consumer holding a data key, printed
// with any fmt verb or logged with log/slog, shows none of its key
// material.
func TestPrintsRedacted(t *testing.T) {
	ctx := context.Background()
	k := &keyRecorder{KMS: kmsfake.New()}
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	b := keycache.Binding{Context: map[string]string{"kinesis:stream": "orders"}, AD: "kinesis:orders"}
	p := newProducer(t, k)
	defer p.Close()
	c := newConsumer(t, k, func(o *keycache.ConsumerOptions) { o.AllowedKeyIDs = []string{arn} })
	defer c.Close()
	key, err := p.Key(ctx, arn, b, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Key(ctx, key.WrappedKey(), b); err != nil {
		t.Fatal(err)
	}
	if len(k.keys) != 1 {
		t.Fatalf("%d data keys generated, want 1", len(k.keys))
	}
	// The data key recorded is the one in use.
	env, err := key.Seal(nil, []byte("pk"), []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := envelope.Parse(env)
	if err != nil {
		t.Fatal(err)
	}
	same, err := envelope.NewKey(k.keys[0].Plaintext, k.keys[0].CiphertextBlob, []byte(b.AD))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := same.Open(nil, &e); err != nil {
		t.Fatalf("the recorded data key does not open a record of the cached one: %v", err)
	}
	secrets := redacttest.Secrets(t, k.keys[0].Plaintext, k.keys[0].CiphertextBlob, b.AD)
	redacttest.Check(t, key, "envelope.Key{REDACTED}", secrets)
	redacttest.Check(t, p, "keycache.Producer{REDACTED}", secrets)
	redacttest.Check(t, c, "keycache.Consumer{REDACTED}", secrets)
	var np *keycache.Producer
	var nc *keycache.Consumer
	if got := fmt.Sprint(np, nc); got != "<nil> <nil>" {
		t.Errorf("nil Producer and Consumer print %q", got)
	}
}
