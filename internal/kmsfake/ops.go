package kmsfake

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// This file holds the KMS operations: their in-process methods, with the
// signatures of *kms.Client, and the implementations shared with Server.
// An implementation returns an *apiError, or the error of ctx.

// GenerateDataKey returns a new data key, in plaintext and encrypted under
// the symmetric key params.KeyId with the encryption context
// params.EncryptionContext, as the GenerateDataKey operation does. The
// data key is params.NumberOfBytes (1 to 1024) random bytes, or 32 for
// KeySpec AES_256 and 16 for AES_128; exactly one of the two must be set.
// The output names the key by its ARN. optFns are ignored.
func (k *KMS) GenerateDataKey(ctx context.Context, params *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	if params == nil {
		params = &kms.GenerateDataKeyInput{}
	}
	if params.KeyId == nil {
		return nil, paramsError("GenerateDataKey", "KeyId")
	}
	return invoke(ctx, k, "GenerateDataKey", params, k.generateDataKey)
}

// Decrypt decrypts params.CiphertextBlob, made by GenerateDataKey or
// Encrypt of this KMS with the same encryption context, as the Decrypt
// operation does. params.KeyId is optional; if set, it must name the key
// that made the ciphertext. The output names the key by its ARN. optFns
// are ignored.
func (k *KMS) Decrypt(ctx context.Context, params *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	if params == nil {
		params = &kms.DecryptInput{}
	}
	return invoke(ctx, k, "Decrypt", params, k.decrypt)
}

// Encrypt encrypts params.Plaintext (1 to 4096 bytes) under the symmetric
// key params.KeyId with the encryption context params.EncryptionContext,
// as the Encrypt operation does. optFns are ignored.
func (k *KMS) Encrypt(ctx context.Context, params *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error) {
	if params == nil {
		params = &kms.EncryptInput{}
	}
	if params.KeyId == nil || params.Plaintext == nil {
		var missing []string
		if params.KeyId == nil {
			missing = append(missing, "KeyId")
		}
		if params.Plaintext == nil {
			missing = append(missing, "Plaintext")
		}
		return nil, paramsError("Encrypt", missing...)
	}
	return invoke(ctx, k, "Encrypt", params, k.encrypt)
}

// DescribeKey returns the metadata of the key params.KeyId, in any state
// but deleted, as the DescribeKey operation does. optFns are ignored.
func (k *KMS) DescribeKey(ctx context.Context, params *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	if params == nil {
		params = &kms.DescribeKeyInput{}
	}
	if params.KeyId == nil {
		return nil, paramsError("DescribeKey", "KeyId")
	}
	return invoke(ctx, k, "DescribeKey", params, k.describeKey)
}

// invoke runs an in-process call of op.
func invoke[In, Out any](ctx context.Context, k *KMS, op string, in *In, fn func(context.Context, *In) (*Out, error)) (*Out, error) {
	if err := ctx.Err(); err != nil {
		// The SDK does not send a request whose ctx is done.
		return nil, &smithy.OperationError{ServiceID: kms.ServiceID, OperationName: op, Err: err}
	}
	if err := k.start(ctx, op); err != nil {
		return nil, opError(op, err)
	}
	out, err := fn(ctx, in)
	if err != nil {
		return nil, opError(op, err)
	}
	return out, nil
}

// paramsError is the error of the SDK's client-side validation of
// required parameters; such a call is never sent.
func paramsError(op string, names ...string) error {
	p := smithy.InvalidParamsError{Context: op + "Input"}
	for _, n := range names {
		p.Add(smithy.NewErrParamRequired(n))
	}
	return &smithy.OperationError{ServiceID: kms.ServiceID, OperationName: op, Err: p}
}

// keyRef is what a cryptographic operation needs of a key, read under the
// lock.
type keyRef struct {
	id, arn string
	aead    cipher.AEAD
}

// cryptoKey returns the key id for the cryptographic operation op.
func (k *KMS) cryptoKey(op, id string, alg types.EncryptionAlgorithmSpec) (keyRef, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.useLocked(op, id)
	if err != nil {
		return keyRef{}, err
	}
	if err := ky.checkCrypto(alg); err != nil {
		return keyRef{}, err
	}
	return keyRef{ky.id, ky.arn, ky.aead}, nil
}

func errDryRun() *apiError {
	return newError(codeDryRun, "The request would have succeeded, but the DryRun option is set.")
}

func errUnsupported(member string) *apiError {
	return validationError("kmsfake: %s is not supported", member)
}

func (k *KMS) generateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput) (*kms.GenerateDataKeyOutput, error) {
	var n int
	switch {
	case in.KeySpec != "" && in.NumberOfBytes != nil, in.KeySpec == "" && in.NumberOfBytes == nil:
		return nil, validationError("Please specify either number of bytes or key spec.")
	case in.KeySpec == types.DataKeySpecAes256:
		n = 32
	case in.KeySpec == types.DataKeySpecAes128:
		n = 16
	case in.KeySpec != "":
		return nil, validationError("1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", in.KeySpec)
	case *in.NumberOfBytes < 1:
		return nil, validationError("1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value greater than or equal to 1", *in.NumberOfBytes)
	case *in.NumberOfBytes > 1024:
		return nil, validationError("1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024", *in.NumberOfBytes)
	default:
		n = int(*in.NumberOfBytes)
	}
	if in.Recipient != nil {
		return nil, errUnsupported("Recipient")
	}
	if err := k.wait(ctx); err != nil {
		return nil, err
	}
	ref, err := k.cryptoKey("GenerateDataKey", aws.ToString(in.KeyId), "")
	if err != nil {
		return nil, err
	}
	if aws.ToBool(in.DryRun) {
		return nil, errDryRun()
	}
	pt := make([]byte, n)
	rand.Read(pt)
	return &kms.GenerateDataKeyOutput{
		CiphertextBlob: seal(ref.aead, ref.id, pt, in.EncryptionContext),
		Plaintext:      pt,
		KeyId:          ptr(ref.arn),
	}, nil
}

func (k *KMS) encrypt(ctx context.Context, in *kms.EncryptInput) (*kms.EncryptOutput, error) {
	switch {
	case len(in.Plaintext) == 0:
		return nil, validationError("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(in.Plaintext) > 4096:
		return nil, validationError("1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096")
	}
	if err := k.wait(ctx); err != nil {
		return nil, err
	}
	ref, err := k.cryptoKey("Encrypt", aws.ToString(in.KeyId), in.EncryptionAlgorithm)
	if err != nil {
		return nil, err
	}
	if aws.ToBool(in.DryRun) {
		return nil, errDryRun()
	}
	return &kms.EncryptOutput{
		CiphertextBlob:      seal(ref.aead, ref.id, in.Plaintext, in.EncryptionContext),
		KeyId:               ptr(ref.arn),
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	}, nil
}

func (k *KMS) decrypt(ctx context.Context, in *kms.DecryptInput) (*kms.DecryptOutput, error) {
	switch {
	case len(in.CiphertextBlob) == 0:
		return nil, validationError("1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length greater than or equal to 1")
	case len(in.CiphertextBlob) > maxBlobSize:
		return nil, validationError("1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length less than or equal to %d", maxBlobSize)
	case in.Recipient != nil:
		return nil, errUnsupported("Recipient")
	}
	if err := k.wait(ctx); err != nil {
		return nil, err
	}
	ref, err := k.decryptKey(in)
	if err != nil {
		return nil, err
	}
	if aws.ToBool(in.DryRun) {
		return nil, errDryRun()
	}
	pt, ok := open(ref.aead, in.CiphertextBlob, in.EncryptionContext)
	if !ok {
		return nil, &apiError{status: 400, code: codeInvalidCipher}
	}
	return &kms.DecryptOutput{
		KeyId:               ptr(ref.arn),
		Plaintext:           pt,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	}, nil
}

// decryptKey returns the key that made the ciphertext of in.
func (k *KMS) decryptKey(in *kms.DecryptInput) (keyRef, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var want *key
	if in.KeyId != nil {
		ky, err := k.resolveLocked(*in.KeyId)
		if err != nil {
			return keyRef{}, err
		}
		want = ky
	}
	// Like KMS, say nothing about why a ciphertext is not one of ours.
	id, ok := blobKeyID(in.CiphertextBlob)
	ky := k.keys[id]
	if !ok || ky == nil {
		return keyRef{}, &apiError{status: 400, code: codeInvalidCipher}
	}
	if want != nil && want != ky {
		return keyRef{}, newError(codeIncorrectKey, "The key ID in the request does not identify a CMK that can perform this operation.")
	}
	if ky.deleted {
		return keyRef{}, newError(codeNotFound, "Key '%s' does not exist", ky.arn)
	}
	if err := ky.checkAccess("Decrypt"); err != nil {
		return keyRef{}, err
	}
	if err := ky.checkCrypto(in.EncryptionAlgorithm); err != nil {
		return keyRef{}, err
	}
	return keyRef{ky.id, ky.arn, ky.aead}, nil
}

func (k *KMS) describeKey(ctx context.Context, in *kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.useLocked("DescribeKey", aws.ToString(in.KeyId))
	if err != nil {
		return nil, err
	}
	return &kms.DescribeKeyOutput{KeyMetadata: ky.metadata()}, nil
}

// The operations below are served by Server only; the methods of KMS that
// administer it share their implementations, with op "" to skip the access
// check.

func (k *KMS) createKeyOp(ctx context.Context, in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
	spec := in.KeySpec
	if spec == "" {
		spec = types.KeySpec(in.CustomerMasterKeySpec)
	}
	if spec == "" {
		spec = types.KeySpecSymmetricDefault
	}
	usages, ok := keyUsages(spec)
	if !ok {
		return nil, validationError("1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: %v", spec, types.KeySpec("").Values())
	}
	usage := usages[0]
	if in.KeyUsage != "" {
		if !slices.Contains(usages, in.KeyUsage) {
			return nil, validationError("The operation failed because the KeyUsage value of the KMS key is not compatible with the KeySpec %s.", spec)
		}
		usage = in.KeyUsage
	}
	switch {
	case in.Origin != "" && in.Origin != types.OriginTypeAwsKms:
		return nil, errUnsupported("Origin " + string(in.Origin))
	case in.CustomKeyStoreId != nil:
		return nil, errUnsupported("CustomKeyStoreId")
	case aws.ToBool(in.MultiRegion):
		return nil, errUnsupported("MultiRegion")
	}
	return &kms.CreateKeyOutput{KeyMetadata: k.createKey(spec, usage, aws.ToString(in.Description), newUUID())}, nil
}

var aliasName = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]+$`)

func (k *KMS) createAlias(op, name, target string) *apiError {
	if len(name) > 256 || !aliasName.MatchString(name) {
		return newError(codeInvalidAlias, "Alias name %s is not valid.", name)
	}
	if strings.HasPrefix(name, "alias/aws/") {
		return newError(codeInvalidAlias, "Alias name %s must not begin with alias/aws/.", name)
	}
	if target == "" || k.isAlias(target) {
		return validationError("Alias target %q must be a key ID or key ARN.", target)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.resolveLocked(target)
	if err == nil {
		err = ky.checkAccess(op)
	}
	if err != nil {
		return err
	}
	if ky.state == types.KeyStatePendingDeletion {
		return newError(codeInvalidState, "%s is pending deletion.", ky.arn)
	}
	if _, ok := k.aliases[name]; ok {
		return newError(codeAlreadyExists, "An alias with the name %s%s already exists", k.aliasARNPrefix, name)
	}
	k.aliases[name] = ky.id
	return nil
}

func (k *KMS) createAliasOp(ctx context.Context, in *kms.CreateAliasInput) (*kms.CreateAliasOutput, error) {
	if err := k.createAlias("CreateAlias", aws.ToString(in.AliasName), aws.ToString(in.TargetKeyId)); err != nil {
		return nil, err
	}
	return &kms.CreateAliasOutput{}, nil
}

// setEnabled enables or disables the key id, for the operation op.
func (k *KMS) setEnabled(op, id string, enable bool) *apiError {
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.useLocked(op, id)
	if err != nil {
		return err
	}
	switch ky.state {
	case types.KeyStateEnabled, types.KeyStateDisabled:
	case types.KeyStatePendingDeletion:
		return newError(codeInvalidState, "%s is pending deletion.", ky.arn)
	default:
		return newError(codeInvalidState, "%s is %s.", ky.arn, ky.state)
	}
	ky.state = types.KeyStateDisabled
	if enable {
		ky.state = types.KeyStateEnabled
	}
	return nil
}

func (k *KMS) enableKeyOp(ctx context.Context, in *kms.EnableKeyInput) (*kms.EnableKeyOutput, error) {
	if err := k.setEnabled("EnableKey", aws.ToString(in.KeyId), true); err != nil {
		return nil, err
	}
	return &kms.EnableKeyOutput{}, nil
}

func (k *KMS) disableKeyOp(ctx context.Context, in *kms.DisableKeyInput) (*kms.DisableKeyOutput, error) {
	if err := k.setEnabled("DisableKey", aws.ToString(in.KeyId), false); err != nil {
		return nil, err
	}
	return &kms.DisableKeyOutput{}, nil
}

func (k *KMS) scheduleKeyDeletionOp(ctx context.Context, in *kms.ScheduleKeyDeletionInput) (*kms.ScheduleKeyDeletionOutput, error) {
	days := int32(defaultPendingDays)
	if in.PendingWindowInDays != nil {
		days = *in.PendingWindowInDays
	}
	if days < minPendingDays || days > maxPendingDays {
		return nil, validationError("1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between %d and %d", days, minPendingDays, maxPendingDays)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.useLocked("ScheduleKeyDeletion", aws.ToString(in.KeyId))
	if err != nil {
		return nil, err
	}
	switch ky.state {
	case types.KeyStateEnabled, types.KeyStateDisabled:
	case types.KeyStatePendingDeletion:
		return nil, newError(codeInvalidState, "%s is pending deletion.", ky.arn)
	default:
		return nil, newError(codeInvalidState, "%s is %s.", ky.arn, ky.state)
	}
	ky.state = types.KeyStatePendingDeletion
	ky.pendingDays = days
	ky.deletion = time.Now().UTC().AddDate(0, 0, int(days))
	return &kms.ScheduleKeyDeletionOutput{
		KeyId:               ptr(ky.arn),
		KeyState:            ky.state,
		DeletionDate:        ptr(ky.deletion),
		PendingWindowInDays: ptr(days),
	}, nil
}

func (k *KMS) cancelKeyDeletionOp(ctx context.Context, in *kms.CancelKeyDeletionInput) (*kms.CancelKeyDeletionOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ky, err := k.useLocked("CancelKeyDeletion", aws.ToString(in.KeyId))
	if err != nil {
		return nil, err
	}
	if ky.state != types.KeyStatePendingDeletion {
		return nil, newError(codeInvalidState, "%s is not pending deletion.", ky.arn)
	}
	// As in KMS, a key whose deletion is canceled is Disabled.
	ky.state = types.KeyStateDisabled
	ky.deletion, ky.pendingDays = time.Time{}, 0
	return &kms.CancelKeyDeletionOutput{KeyId: ptr(ky.arn)}, nil
}

func (k *KMS) listKeysOp(ctx context.Context, in *kms.ListKeysInput) (*kms.ListKeysOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := &kms.ListKeysOutput{Keys: []types.KeyListEntry{}}
	for _, id := range k.order {
		if ky := k.keys[id]; !ky.deleted {
			out.Keys = append(out.Keys, types.KeyListEntry{KeyId: ptr(ky.id), KeyArn: ptr(ky.arn)})
		}
	}
	return out, nil
}
