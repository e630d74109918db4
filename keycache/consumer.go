package keycache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmsiface"
)

// maxShards is the number of independently locked parts of a Consumer (fewer
// when MaxEntries is smaller).
const maxShards = 16

// Consumer caches unwrapped data keys for the consuming side, by wrapped key
// and Binding, in a bounded LRU. Refusals are remembered apart, in a bounded
// set, and KMS calls on misses are rate limited. It is safe for concurrent
// use; see the package documentation.
type Consumer struct {
	client   kmsiface.Decrypter
	opts     ConsumerOptions
	seed     maphash.Seed
	perShard int
	shards   []shard
	refused  refusals
	bucket   tokenBucket
	allowed  []string // AllowedKeyIDs without duplicates (replicas of one key are one)
	region   string   // of the client, if it tells

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	lifeMu sync.Mutex // orders starting KMS calls (wg.Add) before Close's wg.Wait
	c      counters
}

type shard struct {
	mu   sync.Mutex
	m    map[string]*entry // by wrapped key; entries of other bindings chained
	n    int               // entries in the LRU list: working keys only
	head entry             // sentinel of the LRU list: head.next is the most recent
}

// entry is one (wrapped key, binding) of a Consumer: a Decrypt call in
// flight (done != nil, not in the LRU list), or a working key (in the list).
type entry struct {
	wk         string
	b          Binding
	chain      *entry // next entry with the same wrapped key
	prev, next *entry // LRU list

	// Set when the Decrypt call completes, under the shard lock.
	done    chan struct{}
	key     *envelope.Key
	keyARN  string
	err     error
	expires time.Time
}

// NewConsumer returns a consumer cache that calls client.Decrypt. It fails
// for a nil client or an option out of range.
func NewConsumer(client kmsiface.Decrypter, optFns ...func(*ConsumerOptions)) (*Consumer, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil KMS client", errOptions)
	}
	var o ConsumerOptions
	for _, fn := range optFns {
		fn(&o)
	}
	if err := o.resolve(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{client: client, opts: o, seed: maphash.MakeSeed(), ctx: ctx, cancel: cancel}
	// Each shard holds at most perShard keys, so all hold at most
	// MaxEntries.
	c.shards = make([]shard, min(maxShards, o.MaxEntries))
	c.perShard = o.MaxEntries / len(c.shards)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.m = make(map[string]*entry)
		sh.head.next, sh.head.prev = &sh.head, &sh.head
	}
	for _, k := range o.AllowedKeyIDs {
		if !slices.ContainsFunc(c.allowed, func(a string) bool { return sameKey(a, k) }) {
			c.allowed = append(c.allowed, k)
		}
	}
	c.region = clientRegion(client)
	c.refused.init(o.MaxFailures, o.NegativeTTL)
	c.bucket.init(o.DecryptRate, o.DecryptBurst, o.Now())
	return c, nil
}

// Key returns the data key wrapped in wrappedKey for binding b, and the ARN
// of the KMS key that unwrapped it.
//
// A cached key, or a remembered refusal, is returned at once. Otherwise
// Key waits for one Decrypt call, with b.Context as encryption context, or
// until ctx is done. The call is shared with every goroutine waiting for
// the same wrapped key and binding. Key fails with:
//
//   - a *kmsiface.Error for a KMS failure;
//   - ErrNotAllowed for a key outside AllowedKeyIDs;
//   - ErrRateLimited for a miss that the rate limit refuses.
func (c *Consumer) Key(ctx context.Context, wrappedKey []byte, b Binding) (*envelope.Key, string, error) {
	if c.closed.Load() {
		return nil, "", ErrClosed
	}
	if len(c.opts.AllowedKeyIDs) == 0 && !c.opts.InsecureAllowAnyKey {
		return nil, "", errNoAllowedKeys
	}
	sh := c.shard(wrappedKey)
	now := c.opts.Now()
	sh.mu.Lock()
	a, e, ok := c.lookupLocked(sh, wrappedKey, b, now)
	if ok {
		sh.mu.Unlock()
		return a.key, a.keyARN, a.err
	}
	if e == nil {
		// A caller that can no longer wait starts no KMS call: the call
		// would run on in the background for up to CallTimeout, for nobody.
		if err := ctx.Err(); err != nil {
			sh.mu.Unlock()
			return nil, "", err
		}
		if !c.bucket.take(now) {
			sh.mu.Unlock()
			c.c.limited.Add(1)
			return nil, "", ErrRateLimited
		}
		c.lifeMu.Lock()
		if c.closed.Load() {
			c.lifeMu.Unlock()
			sh.mu.Unlock()
			return nil, "", ErrClosed
		}
		c.wg.Add(1)
		c.lifeMu.Unlock()
		e = &entry{wk: string(wrappedKey), b: b, done: make(chan struct{})}
		sh.link(e)
		go c.fetch(sh, e)
	}
	c.c.misses.Add(1)
	done := e.done
	sh.mu.Unlock()

	select {
	case <-done:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	sh.mu.Lock()
	key, arn, err := e.key, e.keyARN, e.err
	sh.mu.Unlock()
	return key, arn, err
}

// Cached returns what c holds for wrappedKey and b, without calling KMS:
// a working key and its KMS key ARN, or a remembered refusal as err. ok is
// false when c holds neither. A call in flight counts as neither.
func (c *Consumer) Cached(wrappedKey []byte, b Binding) (key *envelope.Key, keyARN string, err error, ok bool) {
	if c.closed.Load() {
		return nil, "", ErrClosed, true
	}
	sh := c.shard(wrappedKey)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a, _, ok := c.lookupLocked(sh, wrappedKey, b, c.opts.Now())
	return a.key, a.keyARN, a.err, ok
}

// answer is what a consumer holds for a wrapped key: a working key, or a
// remembered refusal.
type answer struct {
	key    *envelope.Key
	keyARN string
	err    error
}

// lookupLocked returns what c holds for wrappedKey and b, and ok, counting
// a hit; or, with ok false, the call in flight for them if any. It drops an
// expired key. sh.mu must be held.
func (c *Consumer) lookupLocked(sh *shard, wrappedKey []byte, b Binding, now time.Time) (a answer, inflight *entry, ok bool) {
	if e := sh.lookup(wrappedKey, b.AD); e != nil {
		switch {
		case e.done != nil:
			return answer{}, e, false
		case now.Before(e.expires):
			sh.touch(e)
			c.c.hits.add(1)
			return answer{key: e.key, keyARN: e.keyARN}, nil, true
		}
		sh.remove(e) // expired
	}
	if err, arn := c.refused.get(wrappedKey, b.AD, now); err != nil {
		c.c.hits.add(1)
		return answer{keyARN: arn, err: err}, nil, true
	}
	return answer{}, nil, false
}

func (c *Consumer) shard(wrappedKey []byte) *shard {
	return &c.shards[maphash.Bytes(c.seed, wrappedKey)%uint64(len(c.shards))]
}

// fetch makes the Decrypt call for e, which is linked in sh.m but not in
// the LRU list. A working key joins the list; a permanent refusal goes to
// c.refused; a transient failure is forgotten, so the next lookup tries
// again.
func (c *Consumer) fetch(sh *shard, e *entry) {
	defer c.wg.Done()
	key, arn, err := c.decrypt(e)
	now := c.opts.Now()
	sh.mu.Lock()
	e.key, e.keyARN, e.err = key, arn, err
	if err == nil {
		e.expires = now.Add(c.opts.TTL)
		sh.push(e)
		c.evict(sh)
	} else {
		sh.unlink(e)
		if Permanent(err) {
			c.refused.put(e.wk, e.b.AD, err, arn, now)
		}
	}
	close(e.done)
	e.done = nil
	sh.mu.Unlock()
}

func (c *Consumer) decrypt(e *entry) (*envelope.Key, string, error) {
	start := time.Now()
	key, arn, err := c.unwrap(e)
	if c.opts.OnKMSCall != nil {
		c.opts.OnKMSCall("Decrypt", time.Since(start), failureClass(err))
	}
	return key, arn, err
}

// unwrap asks KMS for the data key of e. It names each allowed key in turn
// as the KeyId of Decrypt, so that KMS refuses a wrapped key of any other
// key itself (IncorrectKeyException) without using that key: a writer to
// the stream cannot make the answer depend on a key it controls. Only
// InsecureAllowAnyKey calls without a KeyId.
func (c *Consumer) unwrap(e *entry) (*envelope.Key, string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.CallTimeout)
	defer cancel()
	if len(c.allowed) == 0 {
		return c.unwrapWith(ctx, e, "")
	}
	var unusable error // an allowed key that KMS would not use
	for _, allowed := range c.allowed {
		key, arn, err := c.unwrapWith(ctx, e, allowed)
		var ak *allowedKeyError
		switch {
		case errors.As(err, &ak):
			// Perhaps the record's key: a transient failure, unless another
			// allowed key is the record's.
			if unusable == nil {
				unusable = err
			}
		case !errors.Is(err, errOtherKey):
			return key, arn, err
		}
	}
	if unusable != nil {
		return nil, "", unusable
	}
	var err error
	if len(c.allowed) == 1 {
		err = fmt.Errorf("Decrypt: %w: the wrapped key is not of %q", ErrNotAllowed, c.allowed[0])
	} else {
		err = fmt.Errorf("Decrypt: %w: the wrapped key is of none of the %d allowed keys", ErrNotAllowed, len(c.allowed))
	}
	c.c.fail(err)
	return nil, "", err
}

// errOtherKey is KMS saying that a wrapped key is not of the KeyId given.
var errOtherKey = errors.New("keycache: wrapped key of another key")

// unwrapWith makes one Decrypt call, with the allowed key ARN allowed as
// KeyId if not empty.
func (c *Consumer) unwrapWith(ctx context.Context, e *entry, allowed string) (*envelope.Key, string, error) {
	in := &kms.DecryptInput{
		CiphertextBlob:    []byte(e.wk),
		EncryptionContext: e.b.Context,
	}
	if allowed != "" {
		in.KeyId = ptr(c.keyIDOf(allowed))
	}
	c.c.calls.Add(1)
	out, err := c.client.Decrypt(ctx, in, c.opts.KMSOptions...)
	if err != nil {
		if c.closed.Load() {
			err = ErrClosed
		}
		if allowed != "" && ofOtherKey(err) {
			return nil, "", errOtherKey
		}
		err = kmsiface.Classify("Decrypt", err)
		if allowed != "" && aboutKey(err) {
			// With a KeyId, KMS checks that key first: a disabled, missing
			// or denied key is the consumer's own problem, which no writer
			// to the stream can cause, and which passes once it is fixed.
			err = &allowedKeyError{key: allowed, err: err}
		}
		c.c.fail(err)
		return nil, "", err
	}
	if out == nil {
		err = kmsiface.Classify("Decrypt", errors.New("no output and no error from the KMS client"))
		c.c.fail(err)
		return nil, "", err
	}
	defer clear(out.Plaintext)
	var arn string
	if out.KeyId != nil {
		arn = *out.KeyId
	}
	if allowed != "" && !sameKey(allowed, arn) {
		err := fmt.Errorf("Decrypt: %w: %q", ErrNotAllowed, arn)
		c.c.fail(err)
		return nil, arn, err
	}
	key, err := envelope.NewKey(out.Plaintext, []byte(e.wk), []byte(e.b.AD))
	if err != nil {
		err = &kmsiface.Error{Op: "Decrypt", Class: kmsiface.ErrInvalidKey, Err: fmt.Errorf("unusable data key: %w", err)}
		c.c.fail(err)
		return nil, arn, err
	}
	return key, arn, nil
}

// ofOtherKey reports whether err is KMS refusing a wrapped key because it is
// not of the KeyId given: IncorrectKeyException, or an AccessDenied about
// the ciphertext ("The ciphertext refers to a customer master key that does
// not exist, …") or with no message at all, which is how moto answers a
// KeyId mismatch. An AccessDenied of the key's policy or IAM has a message
// naming the caller and the key.
func ofOtherKey(err error) bool {
	var incorrect *types.IncorrectKeyException
	if errors.As(err, &incorrect) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) || kmsiface.ClassOf(err) != kmsiface.ErrAccessDenied {
		return false
	}
	msg := api.ErrorMessage()
	return msg == "" || msg == "UnknownError" || strings.Contains(msg, "ciphertext refers to")
}

// aboutKey reports whether err, the answer to a Decrypt naming a KeyId, is
// about that key rather than the wrapped key.
func aboutKey(err error) bool {
	switch kmsiface.ClassOf(err) {
	case kmsiface.ErrAccessDenied, kmsiface.ErrKeyDisabled, kmsiface.ErrKeyNotFound:
		return true
	}
	return false
}

// allowedKeyError is KMS refusing an allowed key itself (disabled, pending
// deletion, missing, or access denied): not permanent for the records under
// it, which decrypt once the key is usable again.
type allowedKeyError struct {
	key string
	err error
}

func (e *allowedKeyError) Error() string {
	return fmt.Sprintf("%v (the allowed key %s itself; its records decrypt once it is usable)", e.err, e.key)
}

func (e *allowedKeyError) Unwrap() error { return e.err }

// keyIDOf returns the KeyId to send to Decrypt for the allowed key ARN
// allowed: itself, or for a multi-Region key the ARN of its replica in the
// Region of the client, when the client tells its Region.
func (c *Consumer) keyIDOf(allowed string) string {
	if c.region == "" {
		return allowed
	}
	f := strings.SplitN(allowed, ":", 6)
	if _, _, ok := mrkParts(allowed); !ok || f[3] == c.region {
		return allowed
	}
	f[3] = c.region
	return strings.Join(f, ":")
}

// clientRegion returns the Region of client if it tells it: a *kms.Client
// or the test fake of internal/kmsfake.
func clientRegion(client kmsiface.Decrypter) string {
	switch c := client.(type) {
	case interface{ Options() kms.Options }:
		return c.Options().Region
	case interface{ Region() string }:
		return c.Region()
	}
	return ""
}

// sameKey reports whether the key ARNs a and b name the same key: they are
// equal, or both name the multi-Region key of one key ID ("mrk-…") in one
// account and partition, in any two Regions. Replicas of a multi-Region key
// share its key material and key ID: KMS decrypts in one Region what a
// replica encrypted in another, and names the local replica.
func sameKey(a, b string) bool {
	if a == b {
		return true
	}
	pa, ida, oka := mrkParts(a)
	pb, idb, okb := mrkParts(b)
	return oka && okb && pa == pb && ida == idb
}

// mrkParts splits the ARN of a multi-Region key into its partition and
// account ("arn:PARTITION:kms:*:ACCOUNT") and its key ID.
func mrkParts(arn string) (where, keyID string, ok bool) {
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[2] != "kms" || !strings.HasPrefix(f[5], "key/mrk-") {
		return "", "", false
	}
	return f[1] + ":" + f[4], f[5][len("key/"):], true
}

func ptr[T any](v T) *T { return &v }

// Permanent reports whether err, returned by [Consumer.Key], will recur for
// the same wrapped key and binding. A consumer remembers such refusals for
// NegativeTTL.
//
//   - Permanent: the key is not allowed ([ErrNotAllowed]), or KMS refused
//     the wrapped key as an invalid ciphertext, or for access, key state, a
//     missing key or key usage.
//   - Not permanent: throttling, [ErrRateLimited], network and 5xx
//     failures, [ErrClosed], an ended context, and a refusal of an allowed
//     key itself, which passes once that key is fixed.
func Permanent(err error) bool {
	var ak *allowedKeyError
	if errors.As(err, &ak) {
		return false
	}
	if errors.Is(err, ErrNotAllowed) {
		return true
	}
	switch kmsiface.ClassOf(err) {
	case kmsiface.ErrAccessDenied, kmsiface.ErrKeyDisabled, kmsiface.ErrKeyNotFound,
		kmsiface.ErrInvalidKey, kmsiface.ErrInvalidCiphertext:
		return true
	}
	return false
}

func (sh *shard) lookup(wk []byte, ad string) *entry {
	for e := sh.m[string(wk)]; e != nil; e = e.chain {
		if e.b.AD == ad {
			return e
		}
	}
	return nil
}

// link adds e to the map of sh, not to its LRU list.
func (sh *shard) link(e *entry) {
	e.chain = sh.m[e.wk]
	sh.m[e.wk] = e
}

// unlink removes e, not in the LRU list, from the map of sh.
func (sh *shard) unlink(e *entry) {
	if p := sh.m[e.wk]; p == e {
		if e.chain == nil {
			delete(sh.m, e.wk)
		} else {
			sh.m[e.wk] = e.chain
		}
	} else {
		for ; p != nil; p = p.chain {
			if p.chain == e {
				p.chain = e.chain
				break
			}
		}
	}
	e.chain = nil
}

// push adds e, already linked, to the front of the LRU list.
func (sh *shard) push(e *entry) {
	sh.n++
	e.prev, e.next = &sh.head, sh.head.next
	e.prev.next, e.next.prev = e, e
}

func (sh *shard) touch(e *entry) {
	if sh.head.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &sh.head, sh.head.next
	e.prev.next, e.next.prev = e, e
}

// remove unlinks e, a working key, from the map and the LRU list. Its key
// is not destroyed, since goroutines may still be opening records with it;
// its material is cleared once it is collected.
func (sh *shard) remove(e *entry) {
	sh.unlink(e)
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	sh.n--
}

// evict removes least recently used working keys of sh beyond its share of
// MaxEntries. Calls in flight and refusals are not in the list, so neither
// can evict a working key.
func (c *Consumer) evict(sh *shard) {
	for sh.n > c.perShard {
		sh.remove(sh.head.prev)
		c.c.evictions.Add(1)
	}
}

// Stats returns the counters of c.
func (c *Consumer) Stats() Stats {
	st := c.c.stats()
	st.Refusals = c.refused.live(c.opts.Now())
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		st.Entries += sh.n
		sh.mu.Unlock()
	}
	return st
}

// Close waits for KMS calls in flight and destroys every cached key. Key
// returns ErrClosed afterwards.
func (c *Consumer) Close() error {
	c.lifeMu.Lock()
	if c.closed.Swap(true) {
		c.lifeMu.Unlock()
		return nil
	}
	c.lifeMu.Unlock()
	c.cancel()
	c.wg.Wait()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for sh.head.next != &sh.head {
			e := sh.head.next
			sh.remove(e)
			if e.key != nil {
				e.key.Destroy()
			}
		}
		sh.mu.Unlock()
	}
	return nil
}
