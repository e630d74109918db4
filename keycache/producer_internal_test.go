package keycache

import (
	"context"
	"errors"
	"testing"
	"time"

	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/kmsfake"
)

// TestRemovedSlotStartsNoCall: a caller that looked a slot up just before
// dropExpired removed it (no key, no call) does not fetch into the detached
// slot, whose key Close would never destroy: start refuses, and Key looks
// the slot up again.
func TestRemovedSlotStartsNoCall(t *testing.T) {
	ctx := context.Background()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	p, err := NewProducer(k)
	if err != nil {
		t.Fatal(err)
	}
	b := Binding{Context: map[string]string{"kinesis:stream": "orders"}, AD: "kinesis:orders"}

	s := p.slot(arn, b) // as Key does, before it starts a call
	p.dropExpired(time.Now())
	if c := p.start(s, time.Now()); !errors.Is(c.err, errSlotRemoved) {
		t.Fatalf("start on a removed slot: %v", c.err)
	}
	key, err := p.Key(ctx, arn, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if s.cur.Load() != nil || s.call != nil {
		t.Fatal("the removed slot got a key or a call")
	}
	if n := k.Calls("GenerateDataKey"); n != 1 {
		t.Fatalf("%d GenerateDataKey calls, want 1", n)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := key.Seal(nil, []byte("pk"), []byte("x")); !errors.Is(err, envelope.ErrKeyDestroyed) {
		t.Fatalf("Seal after Close: %v", err)
	}
}
