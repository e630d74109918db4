// Package envelope implements the ksse envelope format, version 1: the bytes
// that carry one encrypted Kinesis or Firehose record.
//
// FORMAT.md at the root of the module specifies the format, and this
// package uses its words. An envelope is
//
//	header || sealed partition key || nonce || ciphertext || wrapped key
//
// The header holds the magic, the version, the lengths of the body and of
// the wrapped key, and the salt.
//
//   - The record key is derived from a KMS data key with HKDF-SHA256, for
//     this record alone.
//   - The ciphertext is AES-256-GCM of the payload under the record key.
//     The header and the sealed partition key are its additional data.
//   - The partition key is sealed with AES-CTR under the same key.
//
// An envelope is self-contained: it carries the KMS-wrapped data key. It is
// also self-delimiting: [Parse] returns the bytes after it, and a [Reader]
// splits a stream of envelopes, such as an S3 object written by Firehose.
//
// # Compatibility
//
// Version 1 is frozen. Envelopes written by any release decrypt with every
// later one. A pinned vector in testdata enforces it.
//
// # Which entry point
//
// Most programs want package github.com/ksse-go/ksse/record. It fetches and
// caches data keys from KMS and applies the Kinesis rules.
//
// This package is for code that manages data keys itself:
//
//   - [NewKey] binds a data key to a stream.
//   - [Key.Seal] writes an envelope.
//   - [Parse] reads one, and [Key.Open] authenticates and decrypts it.
//
// # Errors
//
// Every failure to parse or authenticate an envelope is the same error,
// [ErrOpen]: bad tag, wrong stream, wrong key, truncation, unknown version.
// No unauthenticated plaintext is ever returned.
//
// The exception is a [Reader] that cannot split its input. It returns
// [ErrMalformed] with the offset and the reason. The framing is public, so
// saying where it breaks reveals nothing of the keys.
//
// # FIPS 140-3
//
// In FIPS 140-3 mode (GODEBUG=fips140=on or only, see crypto/fips140),
// every step of a record is a service of the Go Cryptographic Module:
//
//   - the stream and record keys come from crypto/hkdf;
//   - the partition key is sealed with cipher.NewCTR;
//   - the payload is sealed with [cipher.NewGCMWithRandomNonce].
//
// The package works with GODEBUG=fips140=only. CI runs the whole test
// suite so.
//
// Otherwise Seal and Open compute the same functions on faster paths, with
// the same primitives:
//
//   - HKDF-Expand from HMAC-SHA256 states precomputed per Key;
//   - the partition key stream block by block;
//   - GCM with a nonce drawn from crypto/rand with the salt.
//
// The test vectors, the Wycheproof AES-GCM and HKDF-SHA256 vectors and an
// interoperability test hold the two paths to the same output. The FIPS
// path costs about 15 allocations per record instead of 2 (see
// BENCHMARKS.md).
package envelope
