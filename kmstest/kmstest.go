// Package kmstest provides an in-memory AWS KMS for testing code that uses
// KMS data keys, such as ksse.
//
// A [KMS] has the methods of *kms.Client that kmsiface.Client names, so it
// stands in for AWS KMS in a test:
//
//	k := kmstest.New()
//	_, keyARN := k.CreateKey(types.KeySpecSymmetricDefault)
//	var client kmsiface.Client = k
//
// It behaves as KMS does where a caller can tell:
//
//   - A key is named by its key ID or its ARN.
//   - Errors are the SDK's: errors.As finds *types.NotFoundException,
//     *types.InvalidCiphertextException and the others.
//   - A ciphertext decrypts only under its encryption context, and only in
//     the KMS that made it.
//
// Ciphertexts are shorter than real KMS ones. Code under test must not
// assume a size.
//
// A KMS is safe for concurrent use.
package kmstest

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/internal/kmsfake"
)

// KMS is an in-memory AWS KMS. Create one with [New].
type KMS struct {
	k *kmsfake.KMS
}

// New returns an empty KMS in us-east-1.
func New() *KMS { return &KMS{k: kmsfake.New()} }

// CreateKey creates an enabled key and returns its key ID and ARN.
//
// Only a SYMMETRIC_DEFAULT key holds key material. A key of another spec
// exists so that a test can check that it is refused. CreateKey panics on
// an unknown spec.
func (k *KMS) CreateKey(spec types.KeySpec) (keyID, arn string) { return k.k.CreateKey(spec) }

// Calls returns how many times the operation op, such as
// "GenerateDataKey", was called, failed calls included. It panics on a name
// that is not a KMS operation.
func (k *KMS) Calls(op string) int64 { return k.k.Calls(op) }

// GenerateDataKey is the KMS operation, as *kms.Client has it.
func (k *KMS) GenerateDataKey(ctx context.Context, params *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	return k.k.GenerateDataKey(ctx, params, optFns...)
}

// Decrypt is the KMS operation, as *kms.Client has it.
func (k *KMS) Decrypt(ctx context.Context, params *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	return k.k.Decrypt(ctx, params, optFns...)
}

// DescribeKey is the KMS operation, as *kms.Client has it.
func (k *KMS) DescribeKey(ctx context.Context, params *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	return k.k.DescribeKey(ctx, params, optFns...)
}
