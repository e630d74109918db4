package kmsfake

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"syscall"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error codes, as in the "__type" member of a KMS JSON error body.
const (
	codeAccessDenied     = "AccessDeniedException"
	codeAlreadyExists    = "AlreadyExistsException"
	codeDisabled         = "DisabledException"
	codeDryRun           = "DryRunOperationException"
	codeIncorrectKey     = "IncorrectKeyException"
	codeInvalidAlias     = "InvalidAliasNameException"
	codeInvalidCipher    = "InvalidCiphertextException"
	codeInvalidKeyUsage  = "InvalidKeyUsageException"
	codeInvalidState     = "KMSInvalidStateException"
	codeMissingAuth      = "MissingAuthenticationTokenException"
	codeNotFound         = "NotFoundException"
	codeSerialization    = "SerializationException"
	codeUnknownOperation = "UnknownOperationException"
	codeValidation       = "ValidationException"
)

// An apiError is a KMS error response: the HTTP status and the members of
// the JSON error body.
type apiError struct {
	status  int
	code    string
	message string // may be empty, as for InvalidCiphertextException
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func newError(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func validationError(format string, args ...any) *apiError {
	return newError(codeValidation, format, args...)
}

// sdkError returns the error that the SDK's awsJson1_1 deserialiser makes of
// the error response e: the typed exception of the KMS model if it declares
// one for e.code (smithy-go looks the "__type" up in kms.TypeRegistry by its
// shape name), and otherwise a *smithy.GenericAPIError, whose message the
// SDK sets to "UnknownError" when the body has none. sdkError(nil) is nil.
func sdkError(e *apiError) error {
	if e == nil {
		return nil
	}
	if perr, ok := kms.TypeRegistry.DeserializableError(e.code); ok {
		// Every KMS exception has a Message *string member; set it the way
		// the deserialiser would.
		if v := reflect.ValueOf(perr); v.Kind() == reflect.Pointer && e.message != "" {
			if f := v.Elem().FieldByName("Message"); f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[*string]() {
				f.Set(reflect.ValueOf(ptr(e.message)))
			}
		}
		return perr
	}
	msg := e.message
	if msg == "" {
		msg = "UnknownError"
	}
	return &smithy.GenericAPIError{Code: e.code, Message: msg}
}

// opError wraps err, returned by the in-process operation op once started,
// the way *kms.Client wraps the errors of an operation that it sent: in a
// *smithy.OperationError and an *awshttp.ResponseError, whose status is
// zero if there was no response. A ctx error becomes a
// *smithy.CanceledError, as the SDK reports a request canceled in flight.
func opError(op string, err error) error {
	resp := &http.Response{Header: http.Header{}, Body: http.NoBody}
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		resp.Status = fmt.Sprintf("%d %s", ae.status, http.StatusText(ae.status))
		resp.StatusCode = ae.status
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
		resp.Header.Set("Content-Type", contentType)
		resp.Header.Set("X-Amzn-Requestid", newUUID())
		err = sdkError(ae)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		err = &smithy.CanceledError{Err: err}
	}
	return &smithy.OperationError{
		ServiceID:     kms.ServiceID,
		OperationName: op,
		Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: resp}, Err: err},
			RequestID:     resp.Header.Get("X-Amzn-Requestid"),
		},
	}
}

// errConnReset is what a *kms.Client reports when the server resets the
// connection before responding.
func errConnReset() error {
	return &smithyhttp.RequestSendError{Err: &url.Error{
		Op:  "Post",
		URL: "https://kms." + Region + ".amazonaws.com/",
		Err: &net.OpError{
			Op:  "read",
			Net: "tcp",
			Err: os.NewSyscallError("read", syscall.ECONNRESET),
		},
	}}
}
