package kmsiface_test

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
)

// The in-memory KMS of internal/kmsfake satisfies every interface but MACGenerator.
var _ kmsiface.Client = (*kmsfake.KMS)(nil)

// TestErrorPrefix: every class names its package.
func TestErrorPrefix(t *testing.T) {
	for _, err := range []error{kmsiface.ErrAccessDenied, kmsiface.ErrKeyDisabled, kmsiface.ErrKeyNotFound,
		kmsiface.ErrThrottling, kmsiface.ErrInvalidKey, kmsiface.ErrInvalidCiphertext} {
		require.Regexp(t, "^kmsiface: ", err.Error())
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want error
	}{
		{&types.DisabledException{}, kmsiface.ErrKeyDisabled},
		{&types.KMSInvalidStateException{}, kmsiface.ErrKeyDisabled},
		{&types.NotFoundException{}, kmsiface.ErrKeyNotFound},
		{&types.InvalidKeyUsageException{}, kmsiface.ErrInvalidKey},
		{&smithy.GenericAPIError{Code: "AccessDeniedException"}, kmsiface.ErrAccessDenied},
		{&smithy.GenericAPIError{Code: "ThrottlingException"}, kmsiface.ErrThrottling},
		{&types.InvalidCiphertextException{}, kmsiface.ErrInvalidCiphertext},
		{&types.IncorrectKeyException{}, kmsiface.ErrInvalidCiphertext},
		{&smithy.GenericAPIError{Code: "OptInRequired"}, nil},
		{&smithy.GenericAPIError{Code: "InternalFailure"}, nil},
		{errors.New("connection reset"), nil},
	} {
		err := kmsiface.Classify("Decrypt", tc.err)
		require.ErrorIs(t, err, tc.err, "the cause stays reachable")
		require.Equal(t, tc.want, kmsiface.ClassOf(err), "%v", tc.err)
		if tc.want != nil {
			require.ErrorIs(t, err, tc.want)
		}
		var ke *kmsiface.Error
		require.ErrorAs(t, err, &ke)
		require.Equal(t, "Decrypt", ke.Op)
		require.Same(t, err, kmsiface.Classify("Decrypt", err), "classifying twice is a no-op")
	}
	require.NoError(t, kmsiface.Classify("Decrypt", nil))
}
