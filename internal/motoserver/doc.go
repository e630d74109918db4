// Package motoserver starts and talks to a local moto server
// (https://github.com/getmoto/moto), a Python emulator that speaks the real
// AWS wire protocols for KMS, Kinesis, Firehose and S3, so that the real
// aws-sdk-go-v2 clients can be exercised end to end without AWS.
//
// Start launches `python3 -m moto.server -H 127.0.0.1 -p PORT` on a free
// loopback port as a child process in its own process group, waits until it
// answers HTTP, and returns a [Server]; [Server.Close] kills it. If the
// environment variable KSSE_MOTO_ENDPOINT is set (for example by the CI
// script, which starts one moto for all packages), Start starts nothing and
// returns a Server for that endpoint instead.
//
// [AWSConfig] (or [Server.AWSConfig]) builds an aws.Config for the server:
// region us-east-1, static test credentials (with a secret long enough for
// GODEBUG=fips140=only), BaseEndpoint set to the server, and the SDK's
// standard retryer kept on (moto occasionally drops a connection). S3
// clients also need path-style addressing: pass [S3Options] to
// s3.NewFromConfig.
//
// This package does not import "testing", so programs (such as a demo CLI)
// may use it. Tests should use the helpers in the mototest subpackage, which
// skip when moto is not installed, except under CI=true, where they fail.
//
// A moto server may be shared by several test binaries running at once, so
// tests should not rely on it being empty and should name the resources they
// create with [UniqueName].
//
// Known moto quirks: about one call in 25,000 fails with a closed connection
// (the SDK's retries absorb it); a Kinesis ExplicitHashKey exactly equal to
// a shard's EndingHashKey gets an HTTP 500; and the SDK's stream waiters poll
// every 10 s by default, so tests should lower MinDelay. Seen while writing
// this project's tests: single PutRecord has no size limit (use kinesalite
// for the service's limits); sequence numbers are small integers unique only
// within a shard; KMS ScheduleKeyDeletion fails when given a key ARN (pass
// the key ID); KMS Decrypt with a KeyId other than the blob's key answers
// AccessDeniedException (AWS KMS: IncorrectKeyException), and with a KeyId
// that does not exist NotFoundException; KMS enforces the encryption
// context but not key states (a
// disabled or pending-deletion key still works; use kmstest for those).
// Multi-Region keys (CreateKey MultiRegion, ReplicateKey) are created, but
// no ciphertext of one decrypts, in any Region: moto writes 36 bytes of the
// key ID into its blob and "mrk-" and a UUID take 40 (AccessDenied); use
// kmstest's CreateMultiRegionKey and ReplicateKey. GenerateMac computes
// HMAC_SHA_256 under an HMAC_384 or HMAC_512 key where AWS refuses it.
package motoserver
