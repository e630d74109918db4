package record

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/kmsiface"
)

// routingLabel starts the message whose KMS HMAC is a stream's routing
// secret: routingLabel || stream identity.
const routingLabel = "ksse v1 routing key\x00"

// macState is an HMAC keyed with a routing secret, with buffers that spare
// the hot path an allocation.
type macState struct {
	h   hash.Hash
	in  [4 * MaxPartitionKeyLength]byte
	sum [sha256.Size]byte
}

// route is the routing secret of one stream, as a pool of HMAC states keyed
// with it.
type route struct {
	mu  sync.Mutex // held while the secret is fetched
	cur atomic.Pointer[routeState]
}

type routeState struct {
	pool    *sync.Pool // of *macState
	expires time.Time
}

// appendHashKey appends the ExplicitHashKey of partitionKey on the stream of
// b to dst: the Kinesis hash key (MD5) of the partition key, or with
// RoutingKey its HMAC-SHA256 under the stream's routing secret, truncated
// to 128 bits. It allocates nothing once the routing secret is fetched.
func (e *Encryptor) appendHashKey(ctx context.Context, dst []byte, b *binding, partitionKey string) ([]byte, error) {
	if e.opts.RoutingKey == "" {
		return hashkey.Append(dst, partitionKey), nil
	}
	pool, err := e.routePool(ctx, b)
	if err != nil {
		return dst, err
	}
	m := pool.Get().(*macState)
	m.h.Reset()
	m.h.Write(append(m.in[:0], partitionKey...))
	dst = hashkey.AppendDigest(dst, m.h.Sum(m.sum[:0]))
	pool.Put(m)
	return dst, nil
}

// checkRoutingKey makes sure, once per Encryptor, that RoutingKey is an
// HMAC_256 key for GenerateMac: KMS would compute an HMAC-SHA256 under a
// longer HMAC key too, but the spec names HMAC_256.
func (e *Encryptor) checkRoutingKey(ctx context.Context) error {
	if e.routingChecked.Load() {
		return nil
	}
	out, err := e.desc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &e.opts.RoutingKey}, e.opts.KMSOptions...)
	if err != nil {
		return kmsiface.Classify("DescribeKey", err)
	}
	if m := out.KeyMetadata; m == nil || m.KeySpec != types.KeySpecHmac256 || m.KeyUsage != types.KeyUsageTypeGenerateVerifyMac {
		var spec, usage string
		if m != nil {
			spec, usage = string(m.KeySpec), string(m.KeyUsage)
		}
		return &kmsiface.Error{Op: "DescribeKey", Class: kmsiface.ErrInvalidKey,
			Err: fmt.Errorf("RoutingKey %q is a %s key for %s: it must be an HMAC_256 KMS key with key usage GENERATE_VERIFY_MAC", e.opts.RoutingKey, spec, usage)}
	}
	e.routingChecked.Store(true)
	return nil
}

// routePool returns the HMAC states of the stream of b, fetching its
// routing secret with one GenerateMac call per TTL.
func (e *Encryptor) routePool(ctx context.Context, b *binding) (*sync.Pool, error) {
	r := &b.route
	co := &e.opts
	if st := r.cur.Load(); st != nil && co.Now().Before(st.expires) {
		return st.pool, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := co.Now()
	old := r.cur.Load()
	if old != nil && now.Before(old.expires) {
		return old.pool, nil // fetched while this caller waited
	}
	pool, err := e.fetchRoute(ctx, b)
	if err != nil {
		if old == nil {
			return nil, err
		}
		// The secret is a function of the key and the stream: the one
		// fetched before is still right. Keep it, and ask again later.
		r.cur.Store(&routeState{pool: old.pool, expires: now.Add(co.RefreshRetry)})
		return old.pool, nil
	}
	r.cur.Store(&routeState{pool: pool, expires: now.Add(co.TTL)})
	return pool, nil
}

// fetchRoute asks KMS for the routing secret of the stream of b.
func (e *Encryptor) fetchRoute(ctx context.Context, b *binding) (*sync.Pool, error) {
	if err := e.checkRoutingKey(ctx); err != nil {
		return nil, err
	}
	msg := append([]byte(routingLabel), b.kb.AD...)
	out, err := e.mac.GenerateMac(ctx, &kms.GenerateMacInput{
		KeyId:        &e.opts.RoutingKey,
		MacAlgorithm: types.MacAlgorithmSpecHmacSha256,
		Message:      msg,
	}, e.opts.KMSOptions...)
	if err != nil {
		return nil, kmsiface.Classify("GenerateMac", err)
	}
	if out == nil || len(out.Mac) != sha256.Size {
		return nil, &kmsiface.Error{Op: "GenerateMac", Class: kmsiface.ErrInvalidKey,
			Err: fmt.Errorf("RoutingKey %q gave no 32-byte HMAC: it must be an HMAC_256 KMS key", e.opts.RoutingKey)}
	}
	secret := out.Mac
	return &sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, secret)} }}, nil
}
