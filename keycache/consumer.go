package keycache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/kmsiface"
)

// maxShards is the number of independently locked parts of a Consumer (fewer
// when MaxEntries is smaller).
const maxShards = 16

// negativeTTL bounds how long a consumer remembers a wrapped key that KMS
// refused for good (invalid ciphertext, wrong key, not allowed).
const negativeTTL = time.Minute

// Consumer caches unwrapped data keys for the consuming side, by wrapped key
// and Binding, in a bounded LRU. It is safe for concurrent use; see the
// package documentation.
type Consumer struct {
	client   kmsiface.Client
	opts     Options
	seed     maphash.Seed
	perShard int
	shards   []shard

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
	n    int
	head entry // sentinel of the LRU list: head.next is the most recent
}

// entry is one (wrapped key, binding) of a Consumer.
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

// NewConsumer returns a consumer cache that calls client.Decrypt.
func NewConsumer(client kmsiface.Client, optFns ...func(*Options)) *Consumer {
	var o Options
	for _, fn := range optFns {
		fn(&o)
	}
	o.resolve()
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
	return c
}

// Options returns the resolved options of c.
func (c *Consumer) Options() Options { return c.opts }

// Key returns the data key wrapped in wrappedKey for binding b, and the ARN
// of the KMS key that unwrapped it. A cached key is returned at once;
// otherwise Key waits for one Decrypt call with b.Context as encryption
// context, shared with every goroutine waiting for the same wrapped key and
// binding, or until ctx is done. A KMS failure is returned as a
// *kmsiface.Error; a key outside AllowedKeyIDs as ErrNotAllowed.
func (c *Consumer) Key(ctx context.Context, wrappedKey []byte, b Binding) (*envelope.Key, string, error) {
	if c.closed.Load() {
		return nil, "", ErrClosed
	}
	sh := &c.shards[maphash.Bytes(c.seed, wrappedKey)%uint64(len(c.shards))]
	now := c.opts.Now()
	sh.mu.Lock()
	e := sh.lookup(wrappedKey, b.AD)
	if e != nil && e.done == nil && now.Before(e.expires) {
		sh.touch(e)
		key, arn, err := e.key, e.keyARN, e.err
		sh.mu.Unlock()
		c.c.hits.add(1)
		return key, arn, err
	}
	c.c.misses.Add(1)
	if e == nil || e.done == nil {
		// A caller that can no longer wait starts no KMS call: the call
		// would run on in the background for up to CallTimeout, for nobody.
		if err := ctx.Err(); err != nil {
			sh.mu.Unlock()
			return nil, "", err
		}
		if e != nil {
			sh.remove(e) // expired
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
		sh.insert(e)
		c.evict(sh)
		go c.fetch(sh, e)
	}
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

// fetch makes the Decrypt call for e.
func (c *Consumer) fetch(sh *shard, e *entry) {
	defer c.wg.Done()
	key, arn, err := c.decrypt(e)
	now := c.opts.Now()
	sh.mu.Lock()
	e.key, e.keyARN, e.err = key, arn, err
	switch {
	case err == nil:
		e.expires = now.Add(c.opts.TTL)
	case permanent(err):
		e.expires = now.Add(min(c.opts.TTL, negativeTTL))
	default:
		// Transient: the next lookup tries again.
		if sh.lookup([]byte(e.wk), e.b.AD) == e {
			sh.remove(e)
		}
	}
	close(e.done)
	e.done = nil
	// Entries whose call was in flight were spared by evict: restore the
	// bound now that this one is over, keeping e, which was just fetched.
	if sh.lookup([]byte(e.wk), e.b.AD) == e {
		sh.touch(e)
	}
	c.evict(sh)
	sh.mu.Unlock()
}

func (c *Consumer) decrypt(e *entry) (*envelope.Key, string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.CallTimeout)
	defer cancel()
	in := &kms.DecryptInput{
		CiphertextBlob:    []byte(e.wk),
		EncryptionContext: e.b.Context,
	}
	if len(c.opts.AllowedKeyIDs) == 1 {
		in.KeyId = &c.opts.AllowedKeyIDs[0]
	}
	c.c.calls.Add(1)
	out, err := c.client.Decrypt(ctx, in, c.opts.KMSOptions...)
	var incorrect *types.IncorrectKeyException
	if in.KeyId != nil && errors.As(err, &incorrect) {
		// KMS refused because the wrapped key is of another key than the
		// one allowed: that is strict mode at work, not a bad ciphertext.
		err = fmt.Errorf("Decrypt: %w: the wrapped key is not of %q", ErrNotAllowed, *in.KeyId)
		c.c.fail(err)
		return nil, "", err
	}
	if err != nil {
		if c.closed.Load() {
			err = ErrClosed
		}
		err = kmsiface.Classify("Decrypt", err)
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
	if len(c.opts.AllowedKeyIDs) > 0 && !slices.Contains(c.opts.AllowedKeyIDs, arn) {
		err := fmt.Errorf("Decrypt: %w: %q", ErrNotAllowed, arn)
		c.c.fail(err)
		return nil, arn, err
	}
	key, err := envelope.NewKey(out.Plaintext, []byte(e.wk), []byte(e.b.AD))
	if err != nil {
		err = kmsiface.Classify("Decrypt", fmt.Errorf("unusable data key: %w", err))
		c.c.fail(err)
		return nil, arn, err
	}
	return key, arn, nil
}

// permanent reports whether err will recur for the same wrapped key and
// binding, so that it may be remembered.
func permanent(err error) bool {
	return errors.Is(err, ErrNotAllowed) || isInvalidCiphertext(err)
}

// IsInvalidCiphertext reports whether err is KMS refusing a wrapped key as
// invalid for the encryption context or key given (InvalidCiphertextException
// or IncorrectKeyException): a permanent failure of that wrapped key.
func IsInvalidCiphertext(err error) bool { return isInvalidCiphertext(err) }

func isInvalidCiphertext(err error) bool {
	var ic *types.InvalidCiphertextException
	var ik *types.IncorrectKeyException
	return errors.As(err, &ic) || errors.As(err, &ik)
}

func (sh *shard) lookup(wk []byte, ad string) *entry {
	for e := sh.m[string(wk)]; e != nil; e = e.chain {
		if e.b.AD == ad {
			return e
		}
	}
	return nil
}

func (sh *shard) insert(e *entry) {
	e.chain = sh.m[e.wk]
	sh.m[e.wk] = e
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

// remove unlinks e. Its key is not destroyed, since goroutines may still be
// opening records with it; its material is cleared once it is collected. A
// Decrypt in flight for e still completes, and its waiters get its result.
func (sh *shard) remove(e *entry) {
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
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next, e.chain = nil, nil, nil
	sh.n--
}

// evict removes least recently used entries of sh beyond its share of
// MaxEntries. Entries whose Decrypt is in flight are skipped.
func (c *Consumer) evict(sh *shard) {
	for e := sh.head.prev; sh.n > c.perShard && e != &sh.head; {
		prev := e.prev
		if e.done == nil {
			sh.remove(e)
			c.c.evictions.Add(1)
		}
		e = prev
	}
}

// Stats returns the counters of c.
func (c *Consumer) Stats() Stats {
	st := c.c.stats()
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
