package kmsfake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kmsiface"
)

func TestRoundTrip(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyID, arn := k.CreateKey(types.KeySpecSymmetricDefault)
		require.Equal(t, "arn:aws:kms:us-east-1:111122223333:key/"+keyID, arn)
		ec := map[string]string{"stream": "orders", "purpose": "ksse"}

		for _, tc := range []struct {
			name  string
			in    kms.GenerateDataKeyInput
			bytes int
		}{
			{"AES_256", kms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes256}, 32},
			{"AES_128", kms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes128}, 16},
			{"1 byte", kms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1)}, 1},
			{"1024 bytes", kms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1024)}, 1024},
		} {
			t.Run(tc.name, func(t *testing.T) {
				in := tc.in
				in.KeyId, in.EncryptionContext = aws.String(keyID), ec
				out, err := c.GenerateDataKey(ctx, &in)
				require.NoError(t, err)
				require.Len(t, out.Plaintext, tc.bytes)
				require.Equal(t, arn, aws.ToString(out.KeyId))

				// Without KeyId, Decrypt finds the key in the blob.
				dec, err := decrypt(c, out.CiphertextBlob, ec)
				require.NoError(t, err)
				require.Equal(t, out.Plaintext, dec.Plaintext)
				require.Equal(t, arn, aws.ToString(dec.KeyId))
				require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, dec.EncryptionAlgorithm)

				dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(arn)})
				require.NoError(t, err)
				require.Equal(t, out.Plaintext, dec.Plaintext)
			})
		}

		// Data keys are fresh random bytes, and so are blobs.
		a, b := generate(t, c, keyID, ec), generate(t, c, keyID, ec)
		require.NotEqual(t, a.Plaintext, b.Plaintext)
		require.NotEqual(t, a.CiphertextBlob, b.CiphertextBlob)
		require.NotEqual(t, make([]byte, 32), a.Plaintext)

		enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("secret"), EncryptionContext: ec})
		require.NoError(t, err)
		require.Equal(t, arn, aws.ToString(enc.KeyId))
		require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, enc.EncryptionAlgorithm)
		require.False(t, bytes.Contains(enc.CiphertextBlob, []byte("secret")))
		dec, err := decrypt(c, enc.CiphertextBlob, ec)
		require.NoError(t, err)
		require.Equal(t, "secret", string(dec.Plaintext))
	})
}

func TestKeyIdentifiers(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyID, arn := k.CreateKey("")
		require.NoError(t, k.CreateAlias("alias/orders", keyID))
		blob := generate(t, c, keyID, nil).CiphertextBlob

		for _, id := range []string{
			keyID,
			arn,
			"alias/orders",
			"arn:aws:kms:us-east-1:111122223333:alias/orders",
		} {
			out := generate(t, c, id, nil)
			require.Equal(t, arn, aws.ToString(out.KeyId), id)
			md, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
			require.NoError(t, err, id)
			require.Equal(t, keyID, aws.ToString(md.KeyMetadata.KeyId))
			require.Equal(t, arn, aws.ToString(md.KeyMetadata.Arn))
			_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(id)})
			require.NoError(t, err, id)
		}

		for _, id := range []string{
			"alias/unknown",
			"arn:aws:kms:us-east-1:111122223333:alias/unknown",
			"11111111-2222-4333-8444-555555555555",
			strings.Replace(arn, "us-east-1", "eu-west-1", 1),
			strings.Replace(arn, "111122223333", "444455556666", 1),
			"arn:aws:kms:us-east-1:111122223333:alias/ORDERS", // alias names are case sensitive
		} {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: "AES_256"})
			require.ErrorAs(t, err, new(*types.NotFoundException), id)
			require.ErrorIs(t, kmsiface.Classify("GenerateDataKey", err), kmsiface.ErrKeyNotFound)
		}
	})
}

func TestEncryptionContext(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		keyID, _ := k.CreateKey("")
		ec := map[string]string{"stream": "orders", "purpose": "ksse"}
		blob := generate(t, c, keyID, ec).CiphertextBlob

		for name, wrong := range map[string]map[string]string{
			"missing":       nil,
			"other value":   {"stream": "payments", "purpose": "ksse"},
			"subset":        {"stream": "orders"},
			"superset":      {"stream": "orders", "purpose": "ksse", "x": "y"},
			"renamed key":   {"Stream": "orders", "purpose": "ksse"},
			"extra empty":   {"stream": "orders", "purpose": "ksse", "": ""},
			"swapped pairs": {"orders": "stream", "ksse": "purpose"},
		} {
			_, err := decrypt(c, blob, wrong)
			require.ErrorAs(t, err, new(*types.InvalidCiphertextException), name)
		}
		dec, err := decrypt(c, blob, map[string]string{"purpose": "ksse", "stream": "orders"})
		require.NoError(t, err)
		require.Len(t, dec.Plaintext, 32)

		// The encoding is unambiguous: moving bytes between a key and its
		// value, or between pairs, changes the context.
		for _, pair := range [][2]map[string]string{
			{{"a": "bc"}, {"ab": "c"}},
			{{"a": "b", "c": "d"}, {"a": "bc", "": "d"}},
			{{"a": ""}, {}},
		} {
			blob := generate(t, c, keyID, pair[0]).CiphertextBlob
			_, err := decrypt(c, blob, pair[1])
			require.ErrorAs(t, err, new(*types.InvalidCiphertextException), "%v vs %v", pair[0], pair[1])
			_, err = decrypt(c, blob, pair[0])
			require.NoError(t, err)
		}

		// No context and an empty one are the same, as in KMS.
		blob = generate(t, c, keyID, nil).CiphertextBlob
		_, err = decrypt(c, blob, map[string]string{})
		require.NoError(t, err)
	})
}

func TestDecryptKeyID(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyA, _ := k.CreateKey("")
		keyB, _ := k.CreateKey("")
		blob := generate(t, c, keyA, nil).CiphertextBlob

		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(keyB)})
		require.ErrorAs(t, err, new(*types.IncorrectKeyException))

		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String("alias/missing")})
		require.ErrorAs(t, err, new(*types.NotFoundException))
	})
}

func TestTamper(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		keyID, _ := k.CreateKey("")
		ec := map[string]string{"stream": "orders"}
		blob := generate(t, c, keyID, ec).CiphertextBlob

		// Flip every bit in process; over HTTP, one bit per byte in turn.
		_, inProcess := c.(*kmsfake.KMS)
		for i := range len(blob) * 8 {
			if !inProcess && i%8 != i/8%8 {
				continue
			}
			tampered := bytes.Clone(blob)
			tampered[i/8] ^= 1 << (i % 8)
			_, err := decrypt(c, tampered, ec)
			require.ErrorAs(t, err, new(*types.InvalidCiphertextException), "bit %d", i)
		}
		for n := 1; n < len(blob); n++ {
			_, err := decrypt(c, blob[:n], ec)
			require.ErrorAs(t, err, new(*types.InvalidCiphertextException), "truncated to %d", n)
		}
		_, err := decrypt(c, append(bytes.Clone(blob), 0), ec)
		require.ErrorAs(t, err, new(*types.InvalidCiphertextException), "extended")
		_, err = decrypt(c, []byte("not a ciphertext"), ec)
		require.ErrorAs(t, err, new(*types.InvalidCiphertextException))
		_, err = decrypt(c, bytes.Repeat([]byte{1}, 6145), ec)
		requireCode(t, err, "ValidationException")

		// A blob of another KMS does not decrypt here, even with a key of
		// the same ID in the header.
		other := kmsfake.New()
		otherID, _ := other.CreateKey("")
		foreign := generate(t, other, otherID, ec).CiphertextBlob
		_, err = decrypt(c, foreign, ec)
		require.ErrorAs(t, err, new(*types.InvalidCiphertextException))
		_, err = decrypt(c, bytes.Replace(foreign, []byte(otherID), []byte(keyID), 1), ec)
		require.ErrorAs(t, err, new(*types.InvalidCiphertextException))

		// The original still decrypts.
		_, err = decrypt(c, blob, ec)
		require.NoError(t, err)
	})
}

// TestErrorClasses checks every key state and error against the error
// codes of KMS and the classes of kmsiface.
func TestErrorClasses(t *testing.T) {
	type call func(c client, keyID string, blob []byte) error
	generateDataKey := func(c client, keyID string, _ []byte) error {
		_, err := c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
		return err
	}
	decryptBlob := func(c client, _ string, blob []byte) error {
		_, err := decrypt(c, blob, nil)
		return err
	}
	encrypt := func(c client, keyID string, _ []byte) error {
		_, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
		return err
	}
	describeKey := func(c client, keyID string, _ []byte) error {
		_, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		return err
	}
	setState := func(s types.KeyState) func(*kmsfake.KMS, string) error {
		return func(k *kmsfake.KMS, keyID string) error { return k.SetKeyState(keyID, s) }
	}

	for _, tc := range []struct {
		name  string
		spec  types.KeySpec
		setup func(k *kmsfake.KMS, keyID string) error
		call  call
		code  string
		typed func() any // returns a new target for errors.As, or nil
		class error
	}{
		{"disabled/GenerateDataKey", "", setState(types.KeyStateDisabled), generateDataKey, "DisabledException", as[*types.DisabledException], kmsiface.ErrKeyDisabled},
		{"disabled/Decrypt", "", setState(types.KeyStateDisabled), decryptBlob, "DisabledException", as[*types.DisabledException], kmsiface.ErrKeyDisabled},
		{"disabled/Encrypt", "", setState(types.KeyStateDisabled), encrypt, "DisabledException", as[*types.DisabledException], kmsiface.ErrKeyDisabled},
		{"pending deletion/GenerateDataKey", "", setState(types.KeyStatePendingDeletion), generateDataKey, "KMSInvalidStateException", as[*types.KMSInvalidStateException], kmsiface.ErrKeyDisabled},
		{"pending deletion/Decrypt", "", setState(types.KeyStatePendingDeletion), decryptBlob, "KMSInvalidStateException", as[*types.KMSInvalidStateException], kmsiface.ErrKeyDisabled},
		{"unavailable/GenerateDataKey", "", setState(types.KeyStateUnavailable), generateDataKey, "KMSInvalidStateException", as[*types.KMSInvalidStateException], kmsiface.ErrKeyDisabled},
		{"pending import/Decrypt", "", setState(types.KeyStatePendingImport), decryptBlob, "KMSInvalidStateException", as[*types.KMSInvalidStateException], kmsiface.ErrKeyDisabled},
		{"deleted/GenerateDataKey", "", (*kmsfake.KMS).DeleteKey, generateDataKey, "NotFoundException", as[*types.NotFoundException], kmsiface.ErrKeyNotFound},
		{"deleted/Decrypt", "", (*kmsfake.KMS).DeleteKey, decryptBlob, "NotFoundException", as[*types.NotFoundException], kmsiface.ErrKeyNotFound},
		{"deleted/DescribeKey", "", (*kmsfake.KMS).DeleteKey, describeKey, "NotFoundException", as[*types.NotFoundException], kmsiface.ErrKeyNotFound},
		{"denied/GenerateDataKey", "", func(k *kmsfake.KMS, id string) error { return k.DenyAccess(id, "GenerateDataKey") }, generateDataKey, "AccessDeniedException", nil, kmsiface.ErrAccessDenied},
		{"denied/Decrypt", "", func(k *kmsfake.KMS, id string) error { return k.DenyAccess(id, "Decrypt") }, decryptBlob, "AccessDeniedException", nil, kmsiface.ErrAccessDenied},
		{"denied all/DescribeKey", "", func(k *kmsfake.KMS, id string) error { return k.DenyAccess(id) }, describeKey, "AccessDeniedException", nil, kmsiface.ErrAccessDenied},
		{"throttled/GenerateDataKey", "", func(k *kmsfake.KMS, _ string) error {
			k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException", Message: "Rate exceeded"}, 1)
			return nil
		}, generateDataKey, "ThrottlingException", nil, kmsiface.ErrThrottling},
		{"RSA_2048/GenerateDataKey", types.KeySpecRsa2048, nil, generateDataKey, "InvalidKeyUsageException", as[*types.InvalidKeyUsageException], kmsiface.ErrInvalidKey},
		{"ECC_NIST_P256/GenerateDataKey", types.KeySpecEccNistP256, nil, generateDataKey, "InvalidKeyUsageException", as[*types.InvalidKeyUsageException], kmsiface.ErrInvalidKey},
		{"HMAC_256/Encrypt", types.KeySpecHmac256, nil, encrypt, "InvalidKeyUsageException", as[*types.InvalidKeyUsageException], kmsiface.ErrInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
				keyID, _ := k.CreateKey(tc.spec)
				var blob []byte
				if tc.spec == "" {
					blob = generate(t, c, keyID, nil).CiphertextBlob
				}
				if tc.setup != nil {
					require.NoError(t, tc.setup(k, keyID))
				}
				err := tc.call(c, keyID, blob)
				requireCode(t, err, tc.code)
				if tc.typed != nil {
					require.ErrorAs(t, err, tc.typed())
				} else {
					var generic *smithy.GenericAPIError
					require.ErrorAs(t, err, &generic)
				}
				require.Equal(t, tc.class, kmsiface.ClassOf(err))
				require.ErrorIs(t, kmsiface.Classify("op", err), tc.class)
			})
		})
	}
}

// as returns a new target of type *T for errors.As.
func as[T any]() any { return new(T) }

func TestValidation(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyID, _ := k.CreateKey("")
		key := aws.String(keyID)
		for name, in := range map[string]*kms.GenerateDataKeyInput{
			"neither spec nor size": {KeyId: key},
			"both spec and size":    {KeyId: key, KeySpec: "AES_256", NumberOfBytes: aws.Int32(32)},
			"zero bytes":            {KeyId: key, NumberOfBytes: aws.Int32(0)},
			"1025 bytes":            {KeyId: key, NumberOfBytes: aws.Int32(1025)},
			"unknown spec":          {KeyId: key, KeySpec: "AES_512"},
		} {
			_, err := c.GenerateDataKey(ctx, in)
			requireCode(t, err, "ValidationException")
			require.Nil(t, kmsiface.ClassOf(err), name)
		}
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: make([]byte, 4097)})
		requireCode(t, err, "ValidationException")
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		require.ErrorAs(t, err, new(*types.InvalidKeyUsageException))
		_, err = decrypt(c, nil, nil)
		requireCode(t, err, "ValidationException")

		// Required members are checked before the call, as the SDK does,
		// and such calls are not counted.
		before := k.Calls("")
		_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeySpec: "AES_256"})
		var invalid smithy.InvalidParamsError
		require.ErrorAs(t, err, &invalid)
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: key})
		require.ErrorAs(t, err, &invalid)
		_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{})
		require.ErrorAs(t, err, &invalid)
		require.Equal(t, before, k.Calls(""))

		// DryRun checks the request and the key, and changes nothing.
		_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: key, KeySpec: "AES_256", DryRun: aws.Bool(true)})
		require.ErrorAs(t, err, new(*types.DryRunOperationException))
	})
}

func TestDescribeKey(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		describe := func(keyID string) *types.KeyMetadata {
			t.Helper()
			out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
			require.NoError(t, err)
			return out.KeyMetadata
		}

		keyID, arn := k.CreateKey("")
		md := describe(keyID)
		require.Equal(t, keyID, aws.ToString(md.KeyId))
		require.Equal(t, arn, aws.ToString(md.Arn))
		require.Equal(t, kmsfake.AccountID, aws.ToString(md.AWSAccountId))
		require.Equal(t, types.KeySpecSymmetricDefault, md.KeySpec)
		require.Equal(t, types.KeyUsageTypeEncryptDecrypt, md.KeyUsage)
		require.Equal(t, types.KeyStateEnabled, md.KeyState)
		require.True(t, md.Enabled)
		require.Equal(t, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, md.EncryptionAlgorithms)
		require.Equal(t, types.KeyManagerTypeCustomer, md.KeyManager)
		require.Equal(t, types.OriginTypeAwsKms, md.Origin)
		require.WithinDuration(t, time.Now(), aws.ToTime(md.CreationDate), time.Minute)
		require.Nil(t, md.DeletionDate)

		for spec, usage := range map[types.KeySpec]types.KeyUsageType{
			types.KeySpecRsa2048:     types.KeyUsageTypeEncryptDecrypt,
			types.KeySpecEccNistP256: types.KeyUsageTypeSignVerify,
			types.KeySpecHmac256:     types.KeyUsageTypeGenerateVerifyMac,
			types.KeySpecMlKem768:    types.KeyUsageTypeEncapsulateDecapsulate,
		} {
			id, _ := k.CreateKey(spec)
			md := describe(id)
			require.Equal(t, spec, md.KeySpec)
			require.Equal(t, usage, md.KeyUsage)
		}

		// DescribeKey works in every state but deleted.
		require.NoError(t, k.SetKeyState(keyID, types.KeyStateDisabled))
		md = describe(keyID)
		require.Equal(t, types.KeyStateDisabled, md.KeyState)
		require.False(t, md.Enabled)
		require.NoError(t, k.SetKeyState(keyID, types.KeyStatePendingDeletion))
		md = describe(keyID)
		require.Equal(t, types.KeyStatePendingDeletion, md.KeyState)
		require.WithinDuration(t, time.Now().AddDate(0, 0, 30), aws.ToTime(md.DeletionDate), time.Minute)
		require.Equal(t, int32(30), aws.ToInt32(md.PendingDeletionWindowInDays))
	})
}

func TestAccess(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyID, _ := k.CreateKey("")
		otherID, _ := k.CreateKey("")
		blob := generate(t, c, keyID, nil).CiphertextBlob

		require.NoError(t, k.DenyAccess(keyID, "GenerateDataKey"))
		_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
		requireCode(t, err, "AccessDeniedException")
		_, err = decrypt(c, blob, nil)
		require.NoError(t, err, "only GenerateDataKey is denied")
		generate(t, c, otherID, nil) // only this key is denied

		require.NoError(t, k.DenyAccess(keyID))
		_, err = decrypt(c, blob, nil)
		requireCode(t, err, "AccessDeniedException")
		_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		requireCode(t, err, "AccessDeniedException")

		require.NoError(t, k.AllowAccess(keyID))
		generate(t, c, keyID, nil)
		_, err = decrypt(c, blob, nil)
		require.NoError(t, err)
	})
}

func TestDeleteKey(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		keyID, _ := k.CreateKey("")
		require.NoError(t, k.CreateAlias("alias/doomed", keyID))
		blob := generate(t, c, keyID, nil).CiphertextBlob
		require.NoError(t, k.SetKeyState(keyID, types.KeyStatePendingDeletion))
		require.NoError(t, k.DeleteKey(keyID))

		_, err := decrypt(c, blob, nil)
		require.ErrorAs(t, err, new(*types.NotFoundException))
		_, err = c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String("alias/doomed"), KeySpec: "AES_256"})
		require.ErrorAs(t, err, new(*types.NotFoundException))

		// The alias went with the key, so its name is free again.
		newID, _ := k.CreateKey("")
		require.NoError(t, k.CreateAlias("alias/doomed", newID))
		require.ErrorAs(t, k.DeleteKey(keyID), new(*types.NotFoundException))
	})
}

func TestAdminErrors(t *testing.T) {
	k := kmsfake.New()
	keyID, arn := k.CreateKey("")

	require.ErrorAs(t, k.SetKeyState("alias/none", types.KeyStateDisabled), new(*types.NotFoundException))
	requireCode(t, k.SetKeyState(keyID, "Melted"), "ValidationException")
	require.ErrorAs(t, k.DenyAccess("11111111-2222-4333-8444-555555555555"), new(*types.NotFoundException))
	require.ErrorAs(t, k.AllowAccess("alias/none"), new(*types.NotFoundException))

	require.NoError(t, k.CreateAlias("alias/a", keyID))
	require.ErrorAs(t, k.CreateAlias("alias/a", keyID), new(*types.AlreadyExistsException))
	require.ErrorAs(t, k.CreateAlias("a", keyID), new(*types.InvalidAliasNameException))
	require.ErrorAs(t, k.CreateAlias("alias/aws/kinesis", keyID), new(*types.InvalidAliasNameException))
	require.ErrorAs(t, k.CreateAlias("alias/bad name", keyID), new(*types.InvalidAliasNameException))
	requireCode(t, k.CreateAlias("alias/b", "alias/a"), "ValidationException")
	require.ErrorAs(t, k.CreateAlias("alias/b", "11111111-2222-4333-8444-555555555555"), new(*types.NotFoundException))
	require.NoError(t, k.CreateAlias("alias/b", arn))
	require.NoError(t, k.SetKeyState(keyID, types.KeyStatePendingDeletion))
	require.ErrorAs(t, k.CreateAlias("alias/c", keyID), new(*types.KMSInvalidStateException))

	// Caller bugs panic.
	require.Panics(t, func() { k.CreateKey("AES_256") })
	require.Panics(t, func() { k.Calls("GenerateDatakey") })
	require.Panics(t, func() { k.InjectFault("Generate", kmsfake.Fault{}, 1) })
	require.Panics(t, func() { k.InjectFault("", kmsfake.Fault{Status: 200}, 1) })
	require.Panics(t, func() { k.DenyAccess(keyID, "ListKeys") })
	require.Panics(t, func() { kmsfake.NewServer(nil) })
}

func TestContext(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		keyID, _ := k.CreateKey("")
		in := &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"}

		// A call whose ctx is done does nothing and is not sent.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.GenerateDataKey(ctx, in)
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, k.Calls(""))

		// Latency applies to GenerateDataKey, Encrypt and Decrypt and ends
		// with the ctx.
		k.SetLatency(time.Minute)
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.GenerateDataKey(ctx, in)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorAs(t, err, new(*smithy.CanceledError))
		require.Less(t, time.Since(start), 10*time.Second)
		require.EqualValues(t, 1, k.Calls("GenerateDataKey"))

		_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		require.ErrorIs(t, err, context.DeadlineExceeded, "the ctx is done")
		_, err = c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		require.NoError(t, err, "DescribeKey has no latency")

		k.SetLatency(30 * time.Millisecond)
		start = time.Now()
		generate(t, c, keyID, nil)
		require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)

		k.SetLatency(0)
		generate(t, c, keyID, nil)
	})
}

func TestCalls(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		keyID, _ := k.CreateKey("")
		require.Zero(t, k.Calls(""), "methods that administer the KMS are not counted")

		blob := generate(t, c, keyID, nil).CiphertextBlob
		generate(t, c, keyID, nil)
		_, err := decrypt(c, blob, map[string]string{"wrong": "context"})
		require.Error(t, err)
		_, err = decrypt(c, blob, nil)
		require.NoError(t, err)
		k.InjectFault("DescribeKey", kmsfake.Fault{Code: "ThrottlingException"}, 1)
		_, err = c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		require.Error(t, err)

		require.EqualValues(t, 2, k.Calls("GenerateDataKey"))
		require.EqualValues(t, 2, k.Calls("Decrypt"))
		require.EqualValues(t, 1, k.Calls("DescribeKey"))
		require.EqualValues(t, 0, k.Calls("Encrypt"))
		require.EqualValues(t, 5, k.Calls(""))
	})
}

func TestInjectFault(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		ctx := context.Background()
		keyID, _ := k.CreateKey("")
		gen := func() error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256"})
			return err
		}
		describe := func() error {
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
			return err
		}

		// Faults are used up in order, and only by their operation.
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, 2)
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "DisabledException", Message: "injected"}, 1)
		require.NoError(t, describe())
		requireCode(t, gen(), "ThrottlingException")
		requireCode(t, gen(), "ThrottlingException")
		err := gen()
		require.ErrorAs(t, err, new(*types.DisabledException), "an injected code of the KMS model is typed")
		require.ErrorContains(t, err, "injected")
		require.NoError(t, gen())

		// Op "" is any operation; a negative n lasts until ClearFaults.
		k.InjectFault("", kmsfake.Fault{Code: "KMSInternalException"}, -1)
		for range 3 {
			require.ErrorAs(t, gen(), new(*types.KMSInternalException))
			require.ErrorAs(t, describe(), new(*types.KMSInternalException))
		}
		k.ClearFaults()
		require.NoError(t, gen())

		// A fault function decides per call.
		var mu sync.Mutex
		calls := 0
		k.SetFaultFunc(func(op string) *kmsfake.Fault {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if op == "GenerateDataKey" && calls%2 == 0 {
				return &kmsfake.Fault{Code: "ThrottlingException"}
			}
			return nil
		})
		require.NoError(t, gen())
		requireCode(t, gen(), "ThrottlingException")
		require.NoError(t, gen())
		// Injected faults come first.
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "LimitExceededException"}, 1)
		require.ErrorAs(t, gen(), new(*types.LimitExceededException))
		k.SetFaultFunc(nil)
		require.NoError(t, gen())
		require.NoError(t, gen())

		// A fault with only a delay makes a call slow.
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Delay: 30 * time.Millisecond}, 1)
		start := time.Now()
		require.NoError(t, gen())
		require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)

		// Faults come before validation: a faulty call with a bad request
		// reports the fault.
		k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "ThrottlingException"}, 1)
		_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID)})
		requireCode(t, err, "ThrottlingException")
	})
}

func TestConcurrent(t *testing.T) {
	both(t, func(t *testing.T, k *kmsfake.KMS, c client) {
		keyID, _ := k.CreateKey("")
		spareID, _ := k.CreateKey("")
		const workers, rounds = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					ec := map[string]string{"worker": fmt.Sprint(w), "round": fmt.Sprint(i)}
					out, err := c.GenerateDataKey(context.Background(), &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: "AES_256", EncryptionContext: ec})
					if err != nil {
						errs <- err
						return
					}
					dec, err := decrypt(c, out.CiphertextBlob, ec)
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(dec.Plaintext, out.Plaintext) {
						errs <- errors.New("decrypted data key differs")
						return
					}
				}
			})
		}
		// Administer the KMS meanwhile.
		done := make(chan struct{})
		var admin sync.WaitGroup
		admin.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				k.SetKeyState(spareID, types.KeyStateDisabled)
				k.SetKeyState(spareID, types.KeyStateEnabled)
				k.DenyAccess(spareID, "Decrypt")
				k.AllowAccess(spareID)
				k.InjectFault("Encrypt", kmsfake.Fault{Code: "ThrottlingException"}, 1)
				k.SetFaultFunc(func(string) *kmsfake.Fault { return nil })
				k.SetLatency(0)
				k.Calls("")
				k.CreateKey("")
			}
		})
		wg.Wait()
		close(done)
		admin.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.EqualValues(t, workers*rounds, k.Calls("GenerateDataKey"))
		require.EqualValues(t, workers*rounds, k.Calls("Decrypt"))
	})
}
