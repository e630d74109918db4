package record_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/keycache"
	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// TestMultiRegionKey: records sealed under a multi-Region key in one Region
// are read in another with the local replica, while the writing Region's
// KMS is down, whether the consumer names the replica or the primary; a
// multi-Region key of another ID or account is still refused.
//
// moto cannot be used here: it truncates multi-Region key IDs in its
// ciphertexts and then cannot decrypt them (internal/emulator/doc.go).
func TestMultiRegionKey(t *testing.T) {
	ctx := context.Background()
	east, west := kmsfake.New(), kmsfake.NewInRegion("eu-west-1")
	id, primary := east.CreateMultiRegionKey()
	replica, err := east.ReplicateKey(id, west)
	require.NoError(t, err)
	require.NotEqual(t, primary, replica)
	_, otherMRK := east.CreateMultiRegionKey()
	_, err = east.ReplicateKey(otherMRK, west)
	require.NoError(t, err)

	enc, err := record.NewEncryptor(east, primary)
	require.NoError(t, err)
	defer enc.Close()
	r, err := enc.Encrypt(ctx, "orders", "customer-42", []byte(`{"order":42}`))
	require.NoError(t, err)

	// The writing Region is down.
	east.InjectFault("Decrypt", kmsfake.Fault{Code: "InternalFailure", Status: 500}, -1)
	east.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "InternalFailure", Status: 500}, -1)

	for name, allowed := range map[string][]string{
		"replica":              {replica},
		"primary":              {primary},
		"primary among others": {otherMRK, primary},
		"replica among others": {otherMRK, replica},
	} {
		t.Run(name, func(t *testing.T) {
			dec, err := record.NewDecryptor(west, func(o *record.DecryptorOptions) { o.AllowedKeys = allowed })
			require.NoError(t, err)
			defer dec.Close()
			d, err := dec.Decrypt(ctx, "orders", r.Data)
			require.NoError(t, err)
			require.Equal(t, "customer-42", d.PartitionKey)
			require.Equal(t, replica, d.KeyARN, "KMS names the local replica")
		})
	}
	for name, allowed := range map[string][]string{
		"other multi-Region key":          {otherMRK},
		"same ID, other account":          {"arn:aws:kms:us-east-1:999999999999:key/" + id},
		"other key and same ID elsewhere": {otherMRK, "arn:aws:kms:us-east-1:999999999999:key/" + id},
	} {
		t.Run(name, func(t *testing.T) {
			dec, err := record.NewDecryptor(west, func(o *record.DecryptorOptions) { o.AllowedKeys = allowed })
			require.NoError(t, err)
			defer dec.Close()
			_, err = dec.Decrypt(ctx, "orders", r.Data)
			require.Error(t, err)
			if name == "other multi-Region key" {
				require.ErrorIs(t, err, keycache.ErrNotAllowed)
				require.True(t, record.IsPermanent(err), "%v", err)
			} else {
				// An allowed key that does not exist is the consumer's
				// mistake: transient, so that nothing is dropped.
				require.ErrorIs(t, err, kmsiface.ErrKeyNotFound)
				require.False(t, record.IsPermanent(err), "%v", err)
			}
		})
	}
}
