// Package keycache caches KMS data keys for ksse producers and consumers.
//
// A [Producer] holds one data key per (KMS key, binding), where the binding
// is the stream identity (the KMS encryption context and the envelope
// associated data). It calls KMS GenerateDataKey when a key is first needed,
// uses the key for its TTL (5 minutes by default, measured from creation),
// and fetches the replacement in the background shortly before expiry, so
// that once warm no record waits on KMS. Concurrent misses are coalesced:
// one KMS call serves every goroutine waiting for the same key.
//
// A [Consumer] caches unwrapped data keys by wrapped key and binding, for the
// same TTL, in a bounded LRU. Anyone who can write to the stream can put
// records with wrapped keys of their choosing on it, so the consumer bounds
// what they cost:
//
//   - It trusts no KMS key until told: [Options].AllowedKeyIDs lists the key
//     ARNs it accepts, and InsecureAllowAnyKey is the named opt-out.
//   - Memory: at most [Options].MaxEntries working keys (10,000 by default,
//     about 1 KiB each), plus the calls in flight.
//   - KMS never uses a key a writer chooses: each allowed key is named as
//     the KeyId of Decrypt, so a wrapped key of another key is refused by
//     KMS without it.
//   - Refusals: a permanent KMS refusal ([Permanent]) is remembered for
//     NegativeTTL (1 minute) after its last lookup, in a set of its own
//     bounded by MaxFailures, so a forged wrapped key costs one call and
//     never evicts a working key.
//   - Rate: Decrypt calls on misses spend tokens of a bucket (DecryptRate,
//     DecryptBurst: 50 a second, 256 at once). A miss with none left fails
//     at once with [ErrRateLimited].
//
// A call is started only for a caller whose context is still live, and runs
// for at most [Options].CallTimeout. Concurrent misses for the same wrapped
// key are coalesced.
//
// Plaintext data keys returned by KMS are cleared as soon as the envelope key
// is derived from them. A derived key that is evicted, replaced or expired is
// dropped, and its material is cleared when the garbage collector reclaims
// it, once no goroutine uses it any more (see envelope.Key.Destroy). Close
// destroys every cached key, so that none can seal or open again; their
// material too is cleared when collected.
//
// # Concurrency
//
// Producer and Consumer are safe for concurrent use by multiple goroutines.
// Their Options must not be changed after construction. Close stops the
// background refreshes and waits for them; no goroutine is left running.
package keycache
