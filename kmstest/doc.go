// Package kmstest provides an in-memory AWS KMS for tests and benchmarks of
// code that uses KMS data keys, such as ksse.
//
// A [KMS] holds keys in memory and can be used in two ways:
//
//   - In process: its GenerateDataKey, Decrypt, Encrypt and DescribeKey
//     methods have the signatures of the *kms.Client methods of
//     github.com/aws/aws-sdk-go-v2/service/kms, so a *KMS satisfies
//     kmsiface.Client and any other narrow interface copied from the SDK.
//     This path is fast and is the one to use in unit tests and benchmarks.
//   - Over HTTP: [NewServer] serves the same KMS on 127.0.0.1 in the KMS
//     JSON protocol (awsJson1_1), and [Server.Client] returns a real
//     *kms.Client pointed at it, so that a test exercises the SDK's request
//     signing, serialisation, error parsing and retries.
//
// A typical test:
//
//	k := kmstest.New()
//	_, keyARN := k.CreateKey(types.KeySpecSymmetricDefault)
//	var client kmsiface.Client = k // or kmstest.NewServer(k).Client()
//
// # Keys
//
// Keys live in the fixed account [AccountID] and region [Region]. A key
// created with [KMS.CreateKey] has a random UUID key ID and the ARN
// arn:aws:kms:us-east-1:111122223333:key/<key ID>. Wherever KMS accepts a
// key identifier, so does this package: the key ID, the key ARN, an alias
// name (alias/name, see [KMS.CreateAlias]) or an alias ARN
// (arn:aws:kms:us-east-1:111122223333:alias/name). Outputs name keys by ARN,
// as KMS does.
//
// Only SYMMETRIC_DEFAULT keys hold key material. Other key specs (RSA_2048,
// ECC_NIST_P256, HMAC_256, …) exist as metadata only, so that a test can
// check that such a key is refused: GenerateDataKey, Encrypt and Decrypt
// with them fail with InvalidKeyUsageException, and DescribeKey reports
// their KeySpec and KeyUsage.
//
// # Behaviour
//
// The operations check their input and the key as KMS does, and fail with
// the same error codes:
//
//	ValidationException          malformed input, such as both or neither of
//	                             KeySpec and NumberOfBytes
//	NotFoundException            unknown or deleted key or alias
//	AccessDeniedException        the key or operation was denied with DenyAccess
//	DisabledException            the key is Disabled
//	KMSInvalidStateException     the key is PendingDeletion, Unavailable, …
//	InvalidKeyUsageException     the key is not a SYMMETRIC_DEFAULT key
//	InvalidCiphertextException   a ciphertext that is malformed, was tampered
//	                             with, comes from another KMS, or is decrypted
//	                             with a different encryption context
//	IncorrectKeyException        Decrypt's KeyId is not the ciphertext's key
//
// Errors are returned the way a *kms.Client returns them: a
// *smithy.OperationError wrapping an *awshttp.ResponseError (HTTP status 400
// and a request ID) that wraps the exception, which is the SDK's typed
// exception (*types.DisabledException, …) when the KMS model declares one and
// a *smithy.GenericAPIError otherwise (AccessDeniedException,
// ValidationException, ThrottlingException, …). So errors.As, errors.Is and
// kmsiface.ClassOf behave the same in process and over HTTP. Methods that
// are not KMS operations, such as [KMS.SetKeyState], return the bare
// exception.
//
// An operation whose ctx is done before it starts fails with the ctx error
// (in a *smithy.OperationError) and does nothing; one whose ctx is done
// while it waits for injected latency or a delay fails with a
// *smithy.CanceledError wrapping the ctx error, as the SDK reports a request
// canceled in flight. errors.Is(err, context.DeadlineExceeded) holds for
// both.
//
// # Ciphertext
//
// A CiphertextBlob is self-describing and authenticated, like a KMS one, but
// has its own format: a version byte and the 36-byte key ID, then
// AES-256-GCM with a random 96-bit nonce under a secret key of that KMS key,
// with the header and a canonical, length-prefixed encoding of the
// encryption context (sorted by key) as additional data. A blob wrapping 32
// bytes is 97 bytes long, where KMS's is about 184: code under test must not
// assume a size. Blobs decrypt only in the [KMS] that made them; key
// material is random and never leaves the process. A key must not encrypt
// more than 2^32 messages, which is far beyond any test.
//
// Only FIPS 140-3 approved algorithms from the standard library are used
// (crypto/aes, cipher.NewGCMWithRandomNonce, crypto/rand), so the package,
// the server and the SDK client all work under GODEBUG=fips140=only.
//
// # Faults, latency and counters
//
// [KMS.InjectFault] makes the next n calls of an operation fail with a
// [Fault]: a KMS error code such as ThrottlingException, an HTTP 5xx
// status, a delay, or a dropped connection. [KMS.SetFaultFunc] decides per
// call instead. [KMS.SetLatency] delays every GenerateDataKey, Encrypt and
// Decrypt. [KMS.Calls] counts the calls of each operation, failed ones
// included. Faults, latency and counters apply to KMS operations, whether
// called in process or over HTTP, and not to the methods that administer
// the KMS, such as [KMS.CreateKey].
//
// Operations are named as in the KMS API and the X-Amz-Target header:
// CancelKeyDeletion, CreateAlias, CreateKey, Decrypt, DescribeKey,
// DisableKey, EnableKey, Encrypt, GenerateDataKey, ListKeys and
// ScheduleKeyDeletion. Methods that take an operation name panic on any
// other name, to catch typos.
//
// # Concurrency
//
// A [KMS] and a [Server] are safe for concurrent use by multiple goroutines,
// including the methods that administer the KMS and inject faults while
// operations are in flight.
package kmstest
