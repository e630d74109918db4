package kmsfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const (
	contentType  = "application/x-amz-json-1.1"
	targetPrefix = "TrentService."
	maxBodySize  = 1 << 20
)

// Server serves a [KMS] over HTTP on 127.0.0.1 in the KMS JSON protocol
// (awsJson1_1), for a real *kms.Client: see [Server.Client].
//
// It serves CancelKeyDeletion, CreateAlias, CreateKey, Decrypt,
// DescribeKey, DisableKey, EnableKey, Encrypt, GenerateDataKey, ListKeys
// (all keys, in one page) and ScheduleKeyDeletion.
//
//   - A request is a POST with X-Amz-Target "TrentService.<operation>", an
//     Authorization header (the signature is not checked) and a JSON body.
//   - An error response has HTTP status 400, or an injected [Fault]'s, and
//     the body {"__type":"<code>","message":"<message>"}.
//   - Another operation fails with UnknownOperationException. A request
//     without Authorization fails with MissingAuthenticationTokenException.
//   - Members the server does not act on, such as GrantTokens, are ignored.
//
// A Server is safe for concurrent use.
type Server struct {
	k   *KMS
	srv *httptest.Server

	// ctx is canceled by Close, to end the waits of requests in flight.
	ctx    context.Context
	cancel context.CancelFunc
}

// NewServer starts serving k and returns the server. The caller must Close
// it when done, typically with t.Cleanup(srv.Close).
func NewServer(k *KMS) *Server {
	if k == nil {
		panic("kmsfake: NewServer: nil KMS")
	}
	s := &Server{k: k}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL returns the base URL of the server, http://127.0.0.1:<port>.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server, ending the waits of requests in flight (injected
// delays and latency) and closing their connections, and returns when
// they have finished.
func (s *Server) Close() {
	s.cancel()
	s.srv.Close()
}

// Client returns a *kms.Client for the server: region [Region], static
// test credentials, BaseEndpoint [Server.URL] and an HTTP client whose idle
// connections Close closes, then optFns applied.
//
// The client keeps the SDK's default retryer, which makes up to 3 attempts
// for throttling, 5xx and connection errors, with a random backoff of up to
// 2s before the first retry. For a fast test of the retry logic, keep the
// retryer but drop the backoff:
//
//	c := srv.Client(func(o *kms.Options) {
//		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
//			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
//		})
//	})
//
// and to see every failure, turn retries off with
// func(o *kms.Options) { o.Retryer = aws.NopRetryer{} }.
func (s *Server) Client(optFns ...func(*kms.Options)) *kms.Client {
	return kms.New(kms.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL()),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{
				AccessKeyID:     "AKIAKMSTEST",
				SecretAccessKey: "kmstest-secret-access-key",
				Source:          "kmstest",
			}, nil
		}),
		HTTPClient: s.srv.Client(),
	}, optFns...)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodySize))
	if err != nil {
		writeError(w, newError(codeSerialization, "kmsfake: reading the request body: %v", err))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, targetPrefix)
	h := handlers[op]
	if !ok || r.Method != http.MethodPost || r.URL.Path != "/" {
		h = nil
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	f, err := s.k.enter(ctx, op)
	if err != nil {
		abort()
	}
	if f != nil {
		if sleep(ctx, f.Delay) != nil {
			abort()
		}
		if f.Reset {
			resetConnection(w)
			return
		}
		if e := f.response(op); e != nil {
			writeError(w, e)
			return
		}
	}

	switch {
	case h == nil:
		writeError(w, newError(codeUnknownOperation, "kmsfake: unknown operation %q", target))
		return
	case r.Header.Get("Authorization") == "":
		writeError(w, newError(codeMissingAuth, "Missing Authentication Token"))
		return
	}
	out, err := h(s.k, ctx, body)
	var ae *apiError
	switch {
	case err == nil:
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("X-Amzn-Requestid", newUUID())
		w.WriteHeader(http.StatusOK)
		json.NewEncoder(w).Encode(out)
	case errors.As(err, &ae):
		writeError(w, ae)
	case ctx.Err() != nil:
		abort()
	default:
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "InternalFailure", message: "kmsfake: " + err.Error()})
	}
}

// abort ends a request whose client or server gave up, closing its
// connection without a response: returning from the handler would send an
// empty 200 response.
func abort() { panic(http.ErrAbortHandler) }

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Amzn-Requestid", newUUID())
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{e.code, e.message})
}

// resetConnection closes the connection of w with a TCP reset, without a
// response.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection, without a reset
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// A handler decodes the JSON body of a request, runs the operation and
// returns the output to encode as JSON.
type handler func(k *KMS, ctx context.Context, body []byte) (any, error)

// handle makes a handler of fn. The SDK's input structs decode the JSON
// requests of awsJson1_1 as they are: members are named as in the KMS
// model and blobs are base64, as encoding/json expects.
func handle[In, Out any](fn func(*KMS, context.Context, *In) (*Out, error), wire func(*Out) any) handler {
	return func(k *KMS, ctx context.Context, body []byte) (any, error) {
		in := new(In)
		if len(body) > 0 {
			if err := json.Unmarshal(body, in); err != nil {
				return nil, newError(codeSerialization, "kmsfake: %v", err)
			}
		}
		out, err := fn(k, ctx, in)
		if err != nil {
			return nil, err
		}
		return wire(out), nil
	}
}

var handlers = map[string]handler{
	"GenerateDataKey": handle((*KMS).generateDataKey, func(o *kms.GenerateDataKeyOutput) any {
		return struct {
			CiphertextBlob []byte
			Plaintext      []byte
			KeyId          *string
		}{o.CiphertextBlob, o.Plaintext, o.KeyId}
	}),
	"Decrypt": handle((*KMS).decrypt, func(o *kms.DecryptOutput) any {
		return struct {
			KeyId               *string
			Plaintext           []byte
			EncryptionAlgorithm types.EncryptionAlgorithmSpec
		}{o.KeyId, o.Plaintext, o.EncryptionAlgorithm}
	}),
	"Encrypt": handle((*KMS).encrypt, func(o *kms.EncryptOutput) any {
		return struct {
			CiphertextBlob      []byte
			KeyId               *string
			EncryptionAlgorithm types.EncryptionAlgorithmSpec
		}{o.CiphertextBlob, o.KeyId, o.EncryptionAlgorithm}
	}),
	"DescribeKey": handle((*KMS).describeKey, func(o *kms.DescribeKeyOutput) any {
		return struct{ KeyMetadata wireKeyMetadata }{newWireKeyMetadata(o.KeyMetadata)}
	}),
	"CreateKey": handle((*KMS).createKeyOp, func(o *kms.CreateKeyOutput) any {
		return struct{ KeyMetadata wireKeyMetadata }{newWireKeyMetadata(o.KeyMetadata)}
	}),
	"CreateAlias": handle((*KMS).createAliasOp, empty[kms.CreateAliasOutput]),
	"EnableKey":   handle((*KMS).enableKeyOp, empty[kms.EnableKeyOutput]),
	"DisableKey":  handle((*KMS).disableKeyOp, empty[kms.DisableKeyOutput]),
	"ScheduleKeyDeletion": handle((*KMS).scheduleKeyDeletionOp, func(o *kms.ScheduleKeyDeletionOutput) any {
		return struct {
			KeyId               *string
			DeletionDate        *epochSeconds
			KeyState            types.KeyState
			PendingWindowInDays *int32
		}{o.KeyId, (*epochSeconds)(o.DeletionDate), o.KeyState, o.PendingWindowInDays}
	}),
	"CancelKeyDeletion": handle((*KMS).cancelKeyDeletionOp, func(o *kms.CancelKeyDeletionOutput) any {
		return struct{ KeyId *string }{o.KeyId}
	}),
	"ListKeys": handle((*KMS).listKeysOp, func(o *kms.ListKeysOutput) any {
		type entry struct{ KeyId, KeyArn *string }
		keys := make([]entry, len(o.Keys))
		for i, e := range o.Keys {
			keys[i] = entry{e.KeyId, e.KeyArn}
		}
		return struct {
			Keys      []entry
			Truncated bool
		}{keys, o.Truncated}
	}),
}

func empty[Out any](*Out) any { return struct{}{} }

// epochSeconds is a timestamp in the JSON form of awsJson1_1: seconds since
// the Unix epoch, as a number.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return fmt.Appendf(nil, "%d.%03d", ms/1000, ms%1000), nil
}

type wireKeyMetadata struct {
	AWSAccountId                *string
	KeyId                       *string
	Arn                         *string
	CreationDate                *epochSeconds
	Enabled                     bool
	Description                 *string
	KeyUsage                    types.KeyUsageType
	KeyState                    types.KeyState
	DeletionDate                *epochSeconds `json:",omitempty"`
	Origin                      types.OriginType
	KeyManager                  types.KeyManagerType
	CustomerMasterKeySpec       types.CustomerMasterKeySpec
	KeySpec                     types.KeySpec
	EncryptionAlgorithms        []types.EncryptionAlgorithmSpec `json:",omitempty"`
	MultiRegion                 *bool
	PendingDeletionWindowInDays *int32 `json:",omitempty"`
}

func newWireKeyMetadata(md *types.KeyMetadata) wireKeyMetadata {
	return wireKeyMetadata{
		AWSAccountId:                md.AWSAccountId,
		KeyId:                       md.KeyId,
		Arn:                         md.Arn,
		CreationDate:                (*epochSeconds)(md.CreationDate),
		Enabled:                     md.Enabled,
		Description:                 md.Description,
		KeyUsage:                    md.KeyUsage,
		KeyState:                    md.KeyState,
		DeletionDate:                (*epochSeconds)(md.DeletionDate),
		Origin:                      md.Origin,
		KeyManager:                  md.KeyManager,
		CustomerMasterKeySpec:       md.CustomerMasterKeySpec,
		KeySpec:                     md.KeySpec,
		EncryptionAlgorithms:        md.EncryptionAlgorithms,
		MultiRegion:                 md.MultiRegion,
		PendingDeletionWindowInDays: md.PendingDeletionWindowInDays,
	}
}
