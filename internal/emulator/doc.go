// Package emulator starts local AWS emulators for tests and the demo.
//
// There are two, with one shape:
//
//   - [Moto] runs moto (https://github.com/getmoto/moto), a Python
//     emulator of KMS, Kinesis, Firehose and S3.
//   - [Kinesalite] runs kinesalite (https://github.com/mhart/kinesalite), a
//     Node.js Kinesis emulator. It checks lengths and patterns the way
//     Kinesis does, where moto does not.
//
// Each Start returns a [Server] on a free loopback port, running as a child
// process in its own process group. [Server.Close] kills it.
//
// An environment variable can name a running server instead:
// KSSE_MOTO_ENDPOINT and KSSE_KINESALITE_ENDPOINT. scripts/test starts one
// moto for all packages this way. Close then does nothing.
//
// [Server.AWSConfig] builds an aws.Config for the server:
//
//   - region us-east-1 and static test credentials;
//   - the SDK's standard retryer, kept on because moto sometimes drops a
//     connection;
//   - nothing from the environment or ~/.aws.
//
// S3 clients also need [S3Options] (path-style addressing).
//
// This package does not import "testing", so the demo can use it. Tests use
// package emulatortest. It skips when an emulator is not installed, except
// under CI=true, where it fails.
//
// Several test binaries may share one server. Tests should not expect it
// empty and should name what they create with [UniqueName].
//
// # Moto quirks
//
// Seen while writing this project's tests:
//
//   - About one call in 25,000 fails with a closed connection. The SDK's
//     retries absorb it.
//   - A Kinesis ExplicitHashKey equal to a shard's EndingHashKey gets HTTP
//     500.
//   - The SDK's stream waiters poll every 10 s by default. Tests should
//     lower MinDelay.
//   - A single PutRecord has no size limit. Use kinesalite for the
//     service's limits.
//   - Sequence numbers are small integers, unique only within a shard.
//   - KMS ScheduleKeyDeletion fails when given a key ARN. Pass the key ID.
//   - KMS Decrypt with a KeyId other than the blob's key answers
//     AccessDeniedException (AWS KMS: IncorrectKeyException). With a KeyId
//     that does not exist it answers NotFoundException.
//   - KMS enforces the encryption context but not key states: a disabled or
//     pending-deletion key still works. Use the fake in internal/kmsfake.
//   - Multi-Region keys (CreateKey MultiRegion, ReplicateKey) are created,
//     but no ciphertext of one decrypts, in any Region (AccessDenied). moto
//     writes 36 bytes of the key ID into its blob, and "mrk-" and a UUID
//     take 40. Use kmsfake's CreateMultiRegionKey and ReplicateKey.
//   - GenerateMac computes HMAC_SHA_256 under an HMAC_384 or HMAC_512 key,
//     where AWS refuses it.
package emulator
