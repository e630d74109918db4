package kmsiface

import (
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// The error classes of Kinesis server-side encryption. An error returned by
// ksse for a failed KMS call matches at most one of them with errors.Is; an
// error that matches none is some other failure (network, 5xx, a canceled
// context), still wrapped with its cause.
var (
	// ErrAccessDenied: the caller's credentials may not use the key
	// (Kinesis: KMSAccessDeniedException).
	ErrAccessDenied = errors.New("kms: access denied")
	// ErrKeyDisabled: the key is disabled (Kinesis: KMSDisabledException).
	ErrKeyDisabled = errors.New("kms: key disabled")
	// ErrInvalidKeyState: the key is in a state that does not allow the
	// request, such as pending deletion (Kinesis: KMSInvalidStateException).
	ErrInvalidKeyState = errors.New("kms: invalid key state")
	// ErrKeyNotFound: the key does not exist (Kinesis: KMSNotFoundException).
	ErrKeyNotFound = errors.New("kms: key not found")
	// ErrThrottling: the request was throttled (Kinesis:
	// KMSThrottlingException). Retrying later may succeed.
	ErrThrottling = errors.New("kms: throttled")
	// ErrOptInRequired: the account is not subscribed to KMS (Kinesis:
	// KMSOptInRequired).
	ErrOptInRequired = errors.New("kms: opt-in required")
	// ErrInvalidKey: the key cannot be used to wrap data keys, for example an
	// asymmetric or HMAC key (KMS: InvalidKeyUsageException, or a key spec
	// other than SYMMETRIC_DEFAULT).
	ErrInvalidKey = errors.New("kms: key cannot be used for envelope encryption")
)

// Error is a failed KMS call. Class is one of the Err* values of this
// package, or nil when the failure fits none of them; Err is the error
// returned by the client. Error matches Class with errors.Is and unwraps to
// Err, so callers can also reach the SDK's typed exceptions with errors.As.
type Error struct {
	// Op is the KMS operation: "GenerateDataKey", "Decrypt" or
	// "DescribeKey".
	Op string
	// Class is one of the Err* values of this package, or nil.
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

// Unwrap returns both the class and the cause, so that errors.Is matches
// either of them.
func (e *Error) Unwrap() []error {
	if e.Class != nil {
		return []error{e.Class, e.Err}
	}
	return []error{e.Err}
}

// Classify wraps err, returned by the KMS operation op, in an *Error with its
// class. It returns nil for a nil err, and err unchanged when it already is an
// *Error.
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
		disabled *types.DisabledException
		state    *types.KMSInvalidStateException
		notFound *types.NotFoundException
		usage    *types.InvalidKeyUsageException
	)
	switch {
	case errors.As(err, &disabled):
		return ErrKeyDisabled
	case errors.As(err, &state):
		return ErrInvalidKeyState
	case errors.As(err, &notFound):
		return ErrKeyNotFound
	case errors.As(err, &usage):
		return ErrInvalidKey
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
		case "OptInRequired", "SubscriptionRequiredException", "KMSOptInRequired":
			return ErrOptInRequired
		case "DisabledException", "KMSDisabledException":
			return ErrKeyDisabled
		case "KMSInvalidStateException":
			return ErrInvalidKeyState
		case "NotFoundException", "KMSNotFoundException":
			return ErrKeyNotFound
		}
	}
	return nil
}
