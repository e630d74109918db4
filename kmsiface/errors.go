package kmsiface

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// The classes of KMS failures, one per failure that a caller handles
// differently. A failed KMS call returned by ksse matches at most one of
// them with errors.Is. One that matches none is some other failure: a
// network error, a 5xx, a canceled context. Its cause is still wrapped.
var (
	// ErrAccessDenied: the caller's credentials may not use the key
	// (Kinesis: KMSAccessDeniedException).
	ErrAccessDenied = errors.New("kmsiface: access denied")
	// ErrKeyDisabled: the key is disabled, or in another state that does
	// not allow the request, such as pending deletion (Kinesis:
	// KMSDisabledException, KMSInvalidStateException).
	ErrKeyDisabled = errors.New("kmsiface: key disabled or not in a usable state")
	// ErrKeyNotFound: the key does not exist (Kinesis: KMSNotFoundException).
	ErrKeyNotFound = errors.New("kmsiface: key not found")
	// ErrThrottling: the request was throttled (Kinesis:
	// KMSThrottlingException). Retrying later may succeed.
	ErrThrottling = errors.New("kmsiface: throttled")
	// ErrInvalidKey: the key cannot wrap data keys, for example an
	// asymmetric or HMAC key (KMS: InvalidKeyUsageException, or a key spec
	// other than SYMMETRIC_DEFAULT).
	ErrInvalidKey = errors.New("kmsiface: key cannot be used for envelope encryption")
	// ErrInvalidCiphertext: KMS refused a wrapped key for the encryption
	// context or key given (KMS: InvalidCiphertextException,
	// IncorrectKeyException). The wrapped key will never unwrap there.
	ErrInvalidCiphertext = errors.New("kmsiface: invalid ciphertext")
)

// Error is a failed KMS call. It matches Class with errors.Is and unwraps
// to Err, so callers also reach the SDK's typed exceptions with errors.As.
type Error struct {
	// Op is the KMS operation, such as "GenerateDataKey" or "Decrypt".
	Op string
	// Class is one of the Err* values of this package, or nil when the
	// failure fits none.
	Class error
	// Err is the error the client returned.
	Err error
}

// Error names the operation, the class and the cause.
func (e *Error) Error() string {
	if e.Class != nil {
		return fmt.Sprintf("%s: %v: %v", e.Op, e.Class, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Err)
}

// Unwrap returns the class and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Class != nil {
		return []error{e.Class, e.Err}
	}
	return []error{e.Err}
}

// Classify wraps err, returned by the KMS operation op, in an *Error with
// its class.
//
//   - A nil err gives nil.
//   - An err that already is an *Error is returned unchanged.
func Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var ke *Error
	if errors.As(err, &ke) {
		return err
	}
	return &Error{Op: op, Class: classOf(err), Err: err}
}

// ClassOf returns the class of err (one of the Err* values), or nil.
func ClassOf(err error) error {
	var ke *Error
	if errors.As(err, &ke) {
		return ke.Class
	}
	return classOf(err)
}

func classOf(err error) error {
	var (
		disabled   *types.DisabledException
		state      *types.KMSInvalidStateException
		notFound   *types.NotFoundException
		usage      *types.InvalidKeyUsageException
		ciphertext *types.InvalidCiphertextException
		incorrect  *types.IncorrectKeyException
	)
	switch {
	case errors.As(err, &disabled), errors.As(err, &state):
		return ErrKeyDisabled
	case errors.As(err, &notFound):
		return ErrKeyNotFound
	case errors.As(err, &usage):
		return ErrInvalidKey
	case errors.As(err, &ciphertext), errors.As(err, &incorrect):
		return ErrInvalidCiphertext
	}
	// Exceptions that the KMS model does not declare as types.
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "KMSAccessDeniedException":
			return ErrAccessDenied
		case "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
			"RequestLimitExceeded", "KMSThrottlingException":
			return ErrThrottling
		case "DisabledException", "KMSDisabledException", "KMSInvalidStateException":
			return ErrKeyDisabled
		case "NotFoundException", "KMSNotFoundException":
			return ErrKeyNotFound
		}
	}
	return nil
}
