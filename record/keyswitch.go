package record

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/kmsiface"
)

// KeyState is the state of a switch of an Encryptor's KMS key, named after
// the Firehose DeliveryStreamEncryptionConfiguration statuses.
type KeyState string

// Key states.
const (
	// KeyEnabling: a new key is being validated; records are still sealed
	// under the previous key.
	KeyEnabling KeyState = "ENABLING"
	// KeyEnabled: the key in KeyStatus.KeyID is in use.
	KeyEnabled KeyState = "ENABLED"
	// KeyEnablingFailed: the last switch failed (KeyStatus.Err says why);
	// records are still sealed under the previous key, KeyStatus.KeyID.
	KeyEnablingFailed KeyState = "ENABLING_FAILED"
)

// KeyStatus reports the KMS key of an Encryptor.
type KeyStatus struct {
	// State is KeyEnabled when records are sealed under KeyID and no switch
	// is pending, KeyEnabling while SetKeyID validates Pending, and
	// KeyEnablingFailed when Pending failed (see Err).
	State KeyState
	// KeyID is the key that records are sealed under now.
	KeyID string
	// Pending is the key being enabled (KeyEnabling) or that failed to
	// enable (KeyEnablingFailed).
	Pending string
	// Err is why the last switch failed.
	Err error
}

// KeyStatus returns the state of the Encryptor's KMS key.
func (e *Encryptor) KeyStatus() KeyStatus {
	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	return e.status
}

// SetKeyID switches the Encryptor to the KMS key keyID while it runs, as
// StartDeliveryStreamEncryption does for Firehose. It first validates the
// key with DescribeKey: it must be enabled, symmetric (SYMMETRIC_DEFAULT) and
// for ENCRYPT_DECRYPT. If it is, new data keys are generated under it from
// the next record on; if not, the status becomes KeyEnablingFailed, the
// error is returned and records are still sealed under the previous key.
// Records sealed under either key stay decryptable, since each carries its
// wrapped data key.
func (e *Encryptor) SetKeyID(ctx context.Context, keyID string) error {
	if keyID == "" {
		return fmt.Errorf("%w: empty KMS key ID", ErrInvalidInput)
	}
	e.statusMu.Lock()
	if e.status.State == KeyEnabling {
		e.statusMu.Unlock()
		return fmt.Errorf("%w: a key switch is already in progress", ErrInvalidInput)
	}
	cur := e.KeyID()
	e.status = KeyStatus{State: KeyEnabling, KeyID: cur, Pending: keyID}
	e.statusMu.Unlock()

	err := e.validateKey(ctx, keyID)

	e.statusMu.Lock()
	defer e.statusMu.Unlock()
	if err != nil {
		e.status = KeyStatus{State: KeyEnablingFailed, KeyID: cur, Pending: keyID, Err: err}
		return err
	}
	e.keyID.Store(&keyID)
	e.status = KeyStatus{State: KeyEnabled, KeyID: keyID}
	return nil
}

// validateKey checks that keyID names an enabled symmetric encryption key.
func (e *Encryptor) validateKey(ctx context.Context, keyID string) error {
	out, err := e.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID}, e.opts.Cache.KMSOptions...)
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
	case md.KeyState == types.KeyStateDisabled:
		return &kmsiface.Error{Op: "DescribeKey", Class: kmsiface.ErrKeyDisabled, Err: fmt.Errorf("key %q is disabled", keyID)}
	case md.KeyState != types.KeyStateEnabled:
		return &kmsiface.Error{Op: "DescribeKey", Class: kmsiface.ErrInvalidKeyState, Err: fmt.Errorf("key %q is %s", keyID, md.KeyState)}
	}
	return nil
}
