// Package kmsfake is an in-memory AWS KMS for this module's tests, its
// benchmarks and the demo. Package kmstest is its small public face.
//
// A [KMS] is used in two ways:
//
//   - In process. Its GenerateDataKey, Decrypt, Encrypt and DescribeKey
//     have the signatures of *kms.Client, so a *KMS satisfies
//     kmsiface.Client. Use this in unit tests and benchmarks.
//   - Over HTTP. [NewServer] serves it on 127.0.0.1 in the KMS JSON
//     protocol, and [Server.Client] returns a real *kms.Client for it. Use
//     this to exercise the SDK's signing, parsing and retries.
//
// # Keys
//
// Keys live in account [AccountID] and region [Region] (or the one given to
// [NewInRegion]). Wherever KMS takes a key identifier, so does a KMS: key
// ID, key ARN, alias name or alias ARN. Outputs name keys by ARN.
//
// Only SYMMETRIC_DEFAULT keys hold key material. Keys of other specs are
// metadata only, so that a test can check they are refused
// (InvalidKeyUsageException).
//
// # Errors
//
// Operations check their input and the key as KMS does, with the same
// codes: ValidationException, NotFoundException, AccessDeniedException
// ([KMS.DenyAccess]), DisabledException, KMSInvalidStateException,
// InvalidKeyUsageException, InvalidCiphertextException and
// IncorrectKeyException.
//
// Errors have the shape of *kms.Client's: a *smithy.OperationError wrapping
// an *awshttp.ResponseError (HTTP 400, a request ID), wrapping the SDK's
// typed exception where the model declares one, and a
// *smithy.GenericAPIError otherwise. So errors.As and kmsiface.ClassOf
// behave the same in process and over HTTP. The exceptions:
//
//   - Methods that administer the KMS, such as [KMS.SetKeyState], return
//     the bare exception.
//   - A ctx done before an operation starts gives the ctx error, in a
//     *smithy.OperationError. A ctx done during injected latency gives a
//     *smithy.CanceledError. errors.Is(err, context.DeadlineExceeded)
//     holds for both.
//
// # Ciphertext
//
// A CiphertextBlob is a version byte, the 36-byte key ID, then AES-256-GCM
// under that key with a random nonce. The header and the encryption context
// (sorted, length-prefixed) are its additional data. A blob of a 32-byte
// key is 97 bytes, where KMS's is about 184. A blob decrypts only in the
// KMS that made it.
//
// Only FIPS 140-3 approved algorithms are used, so everything works under
// GODEBUG=fips140=only.
//
// # Faults, latency and counters
//
//   - [KMS.InjectFault] makes the next n calls of an operation fail with a
//     [Fault]: an error code, an HTTP 5xx, a delay or a dropped connection.
//     [KMS.SetFaultFunc] decides per call.
//   - [KMS.SetLatency] delays every GenerateDataKey, Encrypt and Decrypt.
//   - [KMS.Calls] counts the calls of an operation, failed ones included.
//
// These apply to KMS operations, in process or over HTTP, and not to the
// methods that administer the KMS. Operation names are those of the KMS
// API. Methods that take one panic on any other name, to catch typos.
//
// A [KMS] and a [Server] are safe for concurrent use, administration and
// fault injection included.
package kmsfake
