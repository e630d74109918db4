// Package keycache caches KMS data keys for ksse producers and consumers.
// Most programs do not use it directly: package
// github.com/ksse-go/ksse/record encrypts and decrypts whole records, with
// a cache of each kind inside.
//
// A [Producer] holds one data key per KMS key and [Binding], the identity
// of one stream. It calls GenerateDataKey on first use, uses the key for
// its TTL (5 minutes by default, from creation), and fetches the
// replacement in the background shortly before expiry. Once warm, no
// record waits on KMS.
//
// A [Consumer] caches unwrapped data keys by wrapped key and binding, for
// the same TTL, in a bounded LRU. Anyone who can write to the stream can
// put wrapped keys of their choosing on it, so the consumer bounds what
// they cost:
//
//   - Trust: it unwraps only the data keys of the keys in
//     [ConsumerOptions].AllowedKeyIDs. InsecureAllowAnyKey is the named
//     opt-out.
//   - KMS never uses a key a writer chooses: each allowed key is sent as
//     the KeyId of Decrypt, so KMS refuses a wrapped key of another key.
//   - Memory: at most MaxEntries working keys (10,000 by default, about
//     1 KiB each), plus the calls in flight.
//   - Refusals: a [Permanent] refusal is remembered for NegativeTTL
//     (1 minute) after its last lookup, in a set of its own bounded by
//     MaxFailures. A forged wrapped key costs one call and never evicts a
//     working key.
//   - Rate: Decrypt calls on misses spend tokens of a bucket (DecryptRate,
//     DecryptBurst: 50 a second, 256 at once). A miss with none left
//     fails at once with [ErrRateLimited].
//
// Both caches coalesce misses: one KMS call serves every goroutine waiting
// for the same key. A call starts only for a caller whose context is live,
// and runs for at most CallTimeout.
//
// # Key material
//
// Plaintext data keys from KMS are cleared once the envelope key is
// derived from them. A derived key that is evicted, replaced or expired is
// dropped. Its material is cleared when the garbage collector reclaims it,
// once no goroutine uses it (see envelope.Key.Destroy). Close destroys
// every cached key, so none can seal or open again.
//
// # Concurrency
//
// Producer and Consumer are safe for concurrent use by multiple goroutines.
// Their options must not change after construction. Close stops the
// background refreshes and waits for them: no goroutine is left running.
package keycache
