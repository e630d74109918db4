package kmsfake_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
)

func TestServerAdminOperations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := kmsfake.New()
	c := newServer(t, k).Client(noRetries)

	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("orders")})
	require.NoError(t, err)
	md := created.KeyMetadata
	keyID, arn := aws.ToString(md.KeyId), aws.ToString(md.Arn)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, keyID)
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+keyID, arn)
	require.Equal(t, types.KeySpecSymmetricDefault, md.KeySpec)
	require.Equal(t, types.KeyStateEnabled, md.KeyState)
	require.Equal(t, "orders", aws.ToString(md.Description))
	generate(t, c, keyID, nil)

	signing, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	require.NoError(t, err)
	require.Equal(t, types.KeyUsageTypeSignVerify, signing.KeyMetadata.KeyUsage)
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: signing.KeyMetadata.KeyId, KeySpec: "AES_256"})
	require.ErrorAs(t, err, new(*types.InvalidKeyUsageException))
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	requireCode(t, err, "ValidationException")

	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/orders"), TargetKeyId: aws.String(keyID)})
	require.NoError(t, err)
	require.Equal(t, arn, aws.ToString(generate(t, c, "alias/orders", nil).KeyId))
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/orders"), TargetKeyId: aws.String(keyID)})
	require.ErrorAs(t, err, new(*types.AlreadyExistsException))

	state := func() types.KeyState {
		t.Helper()
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		require.NoError(t, err)
		return out.KeyMetadata.KeyState
	}
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String("alias/orders")})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, state())
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
	require.ErrorAs(t, err, new(*types.DisabledException))
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateEnabled, state())

	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(6)})
	requireCode(t, err, "ValidationException")
	sched, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	require.Equal(t, arn, aws.ToString(sched.KeyId))
	require.Equal(t, types.KeyStatePendingDeletion, sched.KeyState)
	require.Equal(t, int32(7), aws.ToInt32(sched.PendingWindowInDays))
	require.WithinDuration(t, time.Now().AddDate(0, 0, 7), aws.ToTime(sched.DeletionDate), time.Minute)
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
	require.ErrorAs(t, err, new(*types.KMSInvalidStateException))
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)})
	require.ErrorAs(t, err, new(*types.KMSInvalidStateException))
	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID)})
	require.ErrorAs(t, err, new(*types.KMSInvalidStateException))

	canceled, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyID)})
	require.NoError(t, err)
	require.Equal(t, arn, aws.ToString(canceled.KeyId))
	require.Equal(t, types.KeyStateDisabled, state(), "a key whose deletion is canceled is disabled, as in KMS")
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyID)})
	require.ErrorAs(t, err, new(*types.KMSInvalidStateException))

	require.NoError(t, k.DenyAccess(keyID, "EnableKey"))
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)})
	requireCode(t, err, "AccessDeniedException")

	listed := func() []string {
		t.Helper()
		var ids []string
		p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			require.NoError(t, err)
			for _, e := range page.Keys {
				require.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+aws.ToString(e.KeyId), aws.ToString(e.KeyArn))
				ids = append(ids, aws.ToString(e.KeyId))
			}
		}
		return ids
	}
	require.Equal(t, []string{keyID, aws.ToString(signing.KeyMetadata.KeyId)}, listed())
	require.NoError(t, k.DeleteKey(keyID))
	require.Equal(t, []string{aws.ToString(signing.KeyMetadata.KeyId)}, listed())

	require.EqualValues(t, 3, k.Calls("CreateKey"))
	require.EqualValues(t, 2, k.Calls("CreateAlias"))
	require.EqualValues(t, 2, k.Calls("ListKeys"))
}

func TestServerProtocol(t *testing.T) {
	t.Parallel()
	k := kmsfake.New()
	_, arn := k.CreateKey("")
	require.NoError(t, k.CreateAlias("alias/raw", arn))
	srv := newServer(t, k)

	post := func(target, auth, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL()+"/", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if target != "" {
			req.Header.Set("X-Amz-Target", target)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		return resp.StatusCode, resp.Header, m
	}
	const auth = "AWS4-HMAC-SHA256 Credential=AKIAKMSTEST/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00"

	// A request written by hand, as the protocol specifies: blobs are
	// base64 strings.
	status, header, out := post("TrentService.GenerateDataKey", auth, `{"KeyId":"alias/raw","KeySpec":"AES_256","EncryptionContext":{"k":"v"}}`)
	require.Equal(t, http.StatusOK, status, out)
	require.Equal(t, "application/x-amz-json-1.1", header.Get("Content-Type"))
	require.NotEmpty(t, header.Get("X-Amzn-Requestid"))
	require.Equal(t, arn, out["KeyId"])
	plaintext, err := base64.StdEncoding.DecodeString(out["Plaintext"].(string))
	require.NoError(t, err)
	require.Len(t, plaintext, 32)
	status, _, dec := post("TrentService.Decrypt", auth, fmt.Sprintf(`{"CiphertextBlob":%q,"EncryptionContext":{"k":"v"}}`, out["CiphertextBlob"]))
	require.Equal(t, http.StatusOK, status, dec)
	require.Equal(t, out["Plaintext"], dec["Plaintext"])
	require.Equal(t, "SYMMETRIC_DEFAULT", dec["EncryptionAlgorithm"])

	for _, tc := range []struct {
		name, target, auth, body, code string
	}{
		{"error body", "TrentService.Decrypt", auth, `{"CiphertextBlob":"AAAA"}`, "InvalidCiphertextException"},
		{"unsupported operation", "TrentService.GetPublicKey", auth, `{}`, "UnknownOperationException"},
		{"other service", "Kinesis_20131202.PutRecord", auth, `{}`, "UnknownOperationException"},
		{"no target", "", auth, `{}`, "UnknownOperationException"},
		{"no signature", "TrentService.DescribeKey", "", `{"KeyId":"alias/raw"}`, "MissingAuthenticationTokenException"},
		{"malformed JSON", "TrentService.DescribeKey", auth, `{"KeyId":`, "SerializationException"},
		{"wrong member type", "TrentService.GenerateDataKey", auth, `{"KeyId":"alias/raw","NumberOfBytes":"32"}`, "SerializationException"},
	} {
		status, header, body := post(tc.target, tc.auth, tc.body)
		require.Equal(t, http.StatusBadRequest, status, tc.name)
		require.Equal(t, "application/x-amz-json-1.1", header.Get("Content-Type"), tc.name)
		require.Equal(t, tc.code, body["__type"], tc.name)
	}

	resp, err := http.Get(srv.URL() + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// The SDK reads an unknown code as a generic API error.
	_, err = srv.Client(noRetries).GetPublicKey(context.Background(), &kms.GetPublicKeyInput{KeyId: aws.String(arn)})
	var generic *smithy.GenericAPIError
	require.ErrorAs(t, err, &generic)
	require.Equal(t, "UnknownOperationException", generic.ErrorCode())
	require.EqualValues(t, 2, k.Calls("GenerateDataKey"))
	require.EqualValues(t, 2, k.Calls("DescribeKey"))
	// 2 calls by hand, 7 in the table, GET and GetPublicKey.
	require.EqualValues(t, 11, k.Calls(""), "unsupported operations count in the total")
}

// TestFaultKinds checks each kind of fault with retries off.
func TestFaultKinds(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyID, _ := k.CreateKey("")
		gen := func(ctx context.Context) error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
			return err
		}
		status := func(err error) int {
			t.Helper()
			var re *awshttp.ResponseError
			require.ErrorAs(t, err, &re)
			return re.HTTPStatusCode()
		}
		retryable := func(err error) bool {
			return retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary
		}

		for _, tc := range []struct {
			fault  kmsfake.Fault
			status int
			code   string
		}{
			{kmsfake.Fault{Status: 500}, 500, "InternalFailure"},
			{kmsfake.Fault{Status: 503}, 503, "ServiceUnavailable"},
			{kmsfake.Fault{Status: 502, Code: "BadGateway"}, 502, "BadGateway"},
			{kmsfake.Fault{Code: "ThrottlingException"}, 400, "ThrottlingException"},
			{kmsfake.Fault{Code: "DependencyTimeoutException"}, 503, "DependencyTimeoutException"},
			{kmsfake.Fault{Code: "KMSInternalException"}, 500, "KMSInternalException"},
		} {
			k.InjectFault("GenerateDataKey", tc.fault, 1)
			err := gen(ctx)
			require.Equal(t, tc.status, status(err), "%+v", tc.fault)
			requireCode(t, err, tc.code)
			require.True(t, retryable(err), "the SDK retries %+v", tc.fault)
		}
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 500, Code: "KMSInternalException", Message: "boom"}, 1)
		err := gen(ctx)
		var internal *types.KMSInternalException
		require.ErrorAs(t, err, &internal)
		require.Equal(t, "boom", internal.ErrorMessage())
		require.Equal(t, 500, status(err))

		// A reset is a transport error, not an API error, and retryable.
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Reset: true}, 1)
		err = gen(ctx)
		require.ErrorAs(t, err, new(*smithyhttp.RequestSendError))
		var api smithy.APIError
		require.False(t, errors.As(err, &api), "%v", err)
		require.Nil(t, kmsiface.ClassOf(err))
		require.Equal(t, 0, status(err))
		require.True(t, retryable(err))
		if _, inProcess := c.(*kmsfake.KMS); inProcess {
			require.ErrorIs(t, err, syscall.ECONNRESET)
		}

		// A delay past the deadline ends with the deadline.
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Delay: time.Hour}, 1)
		dctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = gen(dctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, time.Since(start), 10*time.Second)
		require.Nil(t, kmsiface.ClassOf(err))

		require.NoError(t, gen(ctx), "the faults are used up")
		require.EqualValues(t, 10, k.Calls("GenerateDataKey"))
	})
}

func TestServerRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := kmsfake.New()
	keyID, _ := k.CreateKey("")
	srv := newServer(t, k)
	c := srv.Client(fastRetries)
	gen := func() error {
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
		return err
	}
	calls := func(f func()) int64 {
		before := k.Calls("GenerateDataKey")
		f()
		return k.Calls("GenerateDataKey") - before
	}

	require.Equal(t, 3, srv.Client().Options().Retryer.MaxAttempts(), "retries are on by default")

	for _, f := range []kmsfake.Fault{
		{Status: 503},
		{Status: 500},
		{Code: "ThrottlingException"},
		{Reset: true},
	} {
		k.InjectFault("GenerateDataKey", f, 1)
		require.EqualValues(t, 2, calls(func() { require.NoError(t, gen(), "%+v", f) }))
	}
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, 2)
	require.EqualValues(t, 3, calls(func() { require.NoError(t, gen()) }))

	// The SDK gives up after 3 attempts.
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Status: 503}, 3)
	require.EqualValues(t, 3, calls(func() {
		err := gen()
		require.ErrorAs(t, err, new(*retry.MaxAttemptsError))
		requireCode(t, err, "ServiceUnavailable")
	}))
	// and does not retry a key error.
	require.NoError(t, k.SetKeyState(keyID, types.KeyStateDisabled))
	require.EqualValues(t, 1, calls(func() {
		err := gen()
		require.ErrorIs(t, kmsiface.Classify("GenerateDataKey", err), kmsiface.ErrKeyDisabled)
	}))
}

// TestErrorsMatchSDK checks that the in-process errors are the errors that
// *kms.Client returns for the same failures.
func TestErrorsMatchSDK(t *testing.T) {
	t.Parallel()
	k := kmsfake.New()
	keyID, _ := k.CreateKey("")
	disabledID, _ := k.CreateKey("")
	require.NoError(t, k.SetKeyState(disabledID, types.KeyStateDisabled))
	otherID, _ := k.CreateKey("")
	require.NoError(t, k.DenyAccess(otherID, "GenerateDataKey"))
	blob := generate(t, k, keyID, map[string]string{"a": "b"}).CiphertextBlob
	c := newServer(t, k).Client(noRetries)
	requestID := regexp.MustCompile(`RequestID: [0-9a-f-]{36}`)

	gen := func(ctx context.Context, c client, keyID string) error {
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
		return err
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		fault *kmsfake.Fault
		call  func(c client) error
		chain int // how many errors of the chain to compare; 0 for all
	}{
		{name: "disabled", call: func(c client) error { return gen(context.Background(), c, disabledID) }},
		{name: "not found", call: func(c client) error { return gen(context.Background(), c, "alias/none") }},
		{name: "access denied", call: func(c client) error { return gen(context.Background(), c, otherID) }},
		{name: "invalid ciphertext", call: func(c client) error { _, err := decrypt(c, blob, nil); return err }},
		{name: "incorrect key", call: func(c client) error {
			_, err := c.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"a": "b"}, KeyId: aws.String(otherID)})
			return err
		}},
		{name: "validation", call: func(c client) error {
			_, err := c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(keyID)})
			return err
		}},
		{name: "dry run", call: func(c client) error {
			_, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x"), DryRun: aws.Bool(true)})
			return err
		}},
		{name: "missing KeyId", call: func(c client) error {
			_, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{})
			return err
		}},
		{name: "canceled before", call: func(c client) error { return gen(canceled, c, keyID) }},
		{name: "throttling", fault: &kmsfake.Fault{Code: "ThrottlingException", Message: "Rate exceeded"}, call: func(c client) error { return gen(context.Background(), c, keyID) }},
		{name: "503", fault: &kmsfake.Fault{Status: 503}, call: func(c client) error { return gen(context.Background(), c, keyID) }},
		{name: "500 typed", fault: &kmsfake.Fault{Status: 500, Code: "KMSInternalException"}, call: func(c client) error { return gen(context.Background(), c, keyID) }},
		{name: "deadline in flight", fault: &kmsfake.Fault{Delay: time.Hour}, call: func(c client) error {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			return gen(ctx, c, keyID)
		}},
		// The rest of the chain names addresses, and may be io.EOF if the
		// reset arrives before the client reads.
		{name: "reset", fault: &kmsfake.Fault{Reset: true}, call: func(c client) error { return gen(context.Background(), c, keyID) }, chain: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errs [2]error
			for i, c := range []client{k, c} {
				if tc.fault != nil {
					k.InjectFault("", *tc.fault, 1)
				}
				errs[i] = tc.call(c)
				require.Error(t, errs[i])
			}
			inProcess, http := errs[0], errs[1]
			if tc.chain == 0 {
				require.Equal(t, requestID.ReplaceAllString(http.Error(), "RequestID: x"), requestID.ReplaceAllString(inProcess.Error(), "RequestID: x"))
			}
			want, got := errorChain(http), errorChain(inProcess)
			if tc.chain > 0 {
				want, got = want[:tc.chain], got[:tc.chain]
			}
			require.Equal(t, want, got)
		})
	}
}

// errorChain returns the types of the errors that err wraps.
func errorChain(err error) []string {
	var chain []string
	for ; err != nil; err = errors.Unwrap(err) {
		chain = append(chain, fmt.Sprintf("%T", err))
	}
	return chain
}

func TestServerClose(t *testing.T) {
	t.Parallel()
	k := kmsfake.New()
	keyID, _ := k.CreateKey("")
	srv := kmsfake.NewServer(k)
	c := srv.Client(noRetries)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Delay: time.Hour}, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
		errc <- err
	}()
	require.Eventually(t, func() bool { return k.Calls("GenerateDataKey") == 1 }, 5*time.Second, time.Millisecond)

	start := time.Now()
	srv.Close()
	require.Less(t, time.Since(start), 5*time.Second)
	err := <-errc
	require.ErrorAs(t, err, new(*smithyhttp.RequestSendError), "no response, not an empty one")
	srv.Close() // idempotent

	_, err = http.Post(srv.URL(), "application/x-amz-json-1.1", strings.NewReader("{}"))
	require.Error(t, err, "the server is closed")
}
