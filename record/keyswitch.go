package record

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/kmsiface"
)

// SetKeyID switches the Encryptor to the KMS key keyID while it runs, as
// StartDeliveryStreamEncryption does for Firehose. It first checks the key
// with DescribeKey: it must be enabled, symmetric (SYMMETRIC_DEFAULT) and
// for ENCRYPT_DECRYPT.
//
//   - If it is, new data keys are generated under it from the next record
//     on, and KeyID returns it.
//   - If not, SetKeyID returns why, and records are still sealed under the
//     previous key.
//
// Records sealed under either key stay decryptable, since each carries its
// wrapped data key. A call while another switch is validating fails with
// ErrInvalidInput.
func (e *Encryptor) SetKeyID(ctx context.Context, keyID string) error {
	if keyID == "" {
		return fmt.Errorf("%w: empty KMS key ID", ErrInvalidInput)
	}
	if e.desc == nil {
		return fmt.Errorf("%w: SetKeyID needs a KMS client with DescribeKey, such as *kms.Client", ErrInvalidInput)
	}
	if !e.switchMu.TryLock() {
		return fmt.Errorf("%w: a key switch is already in progress", ErrInvalidInput)
	}
	defer e.switchMu.Unlock()
	if err := e.validateKey(ctx, keyID); err != nil {
		return err
	}
	e.keyID.Store(&keyID)
	return nil
}

// validateKey checks that keyID names an enabled symmetric encryption key.
func (e *Encryptor) validateKey(ctx context.Context, keyID string) error {
	out, err := e.desc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID}, e.opts.KMSOptions...)
	if err != nil {
		return kmsiface.Classify("DescribeKey", err)
	}
	md := out.KeyMetadata
	if md == nil {
		return kmsiface.Classify("DescribeKey", fmt.Errorf("no key metadata for %q", keyID))
	}
	switch {
	case md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt:
		return &kmsiface.Error{Op: "DescribeKey", Class: kmsiface.ErrInvalidKey,
			Err: fmt.Errorf("key %q is %s for %s, want SYMMETRIC_DEFAULT for ENCRYPT_DECRYPT", keyID, md.KeySpec, md.KeyUsage)}
	case md.KeyState != types.KeyStateEnabled:
		return &kmsiface.Error{Op: "DescribeKey", Class: kmsiface.ErrKeyDisabled, Err: fmt.Errorf("key %q is %s", keyID, md.KeyState)}
	}
	return nil
}
