package kmsfake

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/traits"
)

// A Fault is a failure injected into a KMS operation with
// [KMS.InjectFault] or [KMS.SetFaultFunc]. Its effects apply in the order
// of its fields:
//
//  1. If Delay is positive, the call waits that long first. A call whose
//     ctx is done meanwhile fails with the ctx error in process; over HTTP
//     the server stops waiting when the client gives up (or the Server is
//     closed) and closes the connection without a response.
//  2. If Reset is set, the call fails as if the connection broke: over
//     HTTP the server closes the TCP connection with a reset and no
//     response; in process the error is the one a *kms.Client reports
//     then, a *smithyhttp.RequestSendError wrapping a *net.OpError for
//     syscall.ECONNRESET.
//  3. If Code or Status is set, the call fails with that error response.
//  4. Otherwise the call goes on normally: a Fault with only a Delay makes
//     a call slow, not failed.
//
// Faults are checked after the call is counted and its ctx checked, and
// before anything else, so a faulty call neither validates its input nor
// changes the KMS.
type Fault struct {
	// Delay is how long the call waits before failing or going on.
	Delay time.Duration

	// Reset makes the call fail with a broken connection.
	Reset bool

	// Code is the error code of the response, such as
	// "ThrottlingException", "DependencyTimeoutException" or any KMS
	// exception. If empty, it is "ServiceUnavailable" for Status 503 and
	// "InternalFailure" for other statuses.
	Code string

	// Message is the error message; if empty, a message naming the
	// injected fault is used.
	Message string

	// Status is the HTTP status code of the error response, 400 to 599.
	// If zero and Code is set, it is the status the KMS model gives Code:
	// 500 for KMSInternalException and KeyUnavailableException, 503 for
	// DependencyTimeoutException, and 400 for the client errors. In
	// process the error carries the status as the SDK's does (see
	// [awshttp.ResponseError]).
	Status int
}

// response returns the error response of f, or nil.
func (f *Fault) response(op string) *apiError {
	if f.Code == "" && f.Status == 0 {
		return nil
	}
	e := &apiError{status: f.Status, code: f.Code, message: f.Message}
	if e.status == 0 {
		e.status = defaultStatus(e.code)
	}
	if e.code == "" {
		e.code = "InternalFailure"
		if e.status == http.StatusServiceUnavailable {
			e.code = "ServiceUnavailable"
		}
	}
	if e.message == "" {
		e.message = fmt.Sprintf("kmsfake: %s injected into %s", e.code, op)
	}
	return e
}

// defaultStatus returns the HTTP status of an error response with the given
// code: that of the KMS model for a server error, else 400.
func defaultStatus(code string) int {
	if e, ok := kms.TypeRegistry.LookupEntry(code); ok {
		if et, ok := smithy.SchemaTrait[*traits.Error](e.Schema); ok && et.Type == "server" {
			if h, ok := smithy.SchemaTrait[*traits.HTTPError](e.Schema); ok {
				return h.Code
			}
			return http.StatusInternalServerError
		}
	}
	return http.StatusBadRequest
}

func (f *Fault) check(caller string) {
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("kmsfake: %s: Fault.Status %d is not an error status", caller, f.Status))
	}
}

type injectedFault struct {
	op    string // "" for any operation
	fault Fault
	left  int // negative for unlimited
}

// InjectFault makes the next n calls of the operation op fail with f, or
// every call from now on if n is negative; op "" means any operation.
// Faults injected earlier are used up first, so
//
//	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, 2)
//	k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 503}, 1)
//
// throttles two calls and then answers one with HTTP 503. InjectFault
// panics if op is not an operation of this package or f.Status is not
// zero or an error status.
func (k *KMS) InjectFault(op string, f Fault, n int) {
	if op != "" && !operations[op] {
		panic(fmt.Sprintf("kmsfake: InjectFault: unknown operation %q", op))
	}
	f.check("InjectFault")
	if n == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = append(k.faults, &injectedFault{op: op, fault: f, left: n})
}

// SetFaultFunc makes every call consult fn, with the name of its operation,
// when no fault injected with [KMS.InjectFault] applies; a nil result
// means no fault. fn is called concurrently from the goroutines of the
// calls, without locks held. SetFaultFunc(nil) removes the function.
//
// Over HTTP, fn also sees requests for operations that the server does not
// support, with the name from their X-Amz-Target header.
func (k *KMS) SetFaultFunc(fn func(op string) *Fault) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faultFn = fn
}

// ClearFaults removes every fault injected with [KMS.InjectFault] and the
// function set with [KMS.SetFaultFunc].
func (k *KMS) ClearFaults() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.faults = nil
	k.faultFn = nil
}

// enter starts a call of op: it counts the call, checks ctx and returns
// the fault to apply, if any.
func (k *KMS) enter(ctx context.Context, op string) (*Fault, error) {
	k.count(op)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	for i, inj := range k.faults {
		if inj.op != "" && inj.op != op {
			continue
		}
		f := inj.fault
		if inj.left > 0 {
			inj.left--
			if inj.left == 0 {
				k.faults = slices.Delete(k.faults, i, i+1)
			}
		}
		k.mu.Unlock()
		return &f, nil
	}
	fn := k.faultFn
	k.mu.Unlock()
	if fn == nil {
		return nil, nil
	}
	f := fn(op)
	if f != nil {
		f.check("fault function")
	}
	return f, nil
}

// start starts an in-process call of op, applying its fault.
func (k *KMS) start(ctx context.Context, op string) error {
	f, err := k.enter(ctx, op)
	if err != nil || f == nil {
		return err
	}
	if err := sleep(ctx, f.Delay); err != nil {
		return err
	}
	if f.Reset {
		return errConnReset()
	}
	if e := f.response(op); e != nil {
		return e
	}
	return nil
}

// wait waits for the latency of the cryptographic operations.
func (k *KMS) wait(ctx context.Context) error {
	k.mu.Lock()
	d := k.latency
	k.mu.Unlock()
	return sleep(ctx, d)
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
