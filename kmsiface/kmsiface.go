// Package kmsiface declares the narrow AWS KMS client interface that ksse
// uses, and classifies KMS failures into the error classes that Kinesis
// server-side encryption reports.
//
// The method signatures are copied from
// github.com/aws/aws-sdk-go-v2/service/kms, so a *kms.Client satisfies
// [Client] unchanged:
//
//	var c kmsiface.Client = kms.NewFromConfig(cfg)
//
// Tests can use the in-memory KMS of package
// github.com/ksse-go/ksse/kmstest, which satisfies [Client] in process and
// also serves the KMS JSON protocol over HTTP for a real *kms.Client.
package kmsiface

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Client is the subset of the AWS KMS API that ksse calls.
//
// Producers call GenerateDataKey once per data key (about once per cache
// TTL), consumers call Decrypt once per distinct wrapped key, and
// DescribeKey is called when a key is validated before use. Implementations
// must be safe for concurrent use, as *kms.Client is.
type Client interface {
	// GenerateDataKey is (*kms.Client).GenerateDataKey: a new data key,
	// in plaintext and wrapped, under the encryption context given.
	GenerateDataKey(ctx context.Context, params *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	// Decrypt is (*kms.Client).Decrypt: unwraps a data key, for the same
	// encryption context.
	Decrypt(ctx context.Context, params *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
	// DescribeKey is (*kms.Client).DescribeKey, used to validate a key.
	DescribeKey(ctx context.Context, params *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
}

var _ Client = (*kms.Client)(nil)

// MACClient is the KMS operation of keyed routing (record's
// EncryptorOptions.RoutingKey): (*kms.Client).GenerateMac.
type MACClient interface {
	// GenerateMac is (*kms.Client).GenerateMac: an HMAC of a message under
	// an HMAC KMS key.
	GenerateMac(ctx context.Context, params *kms.GenerateMacInput, optFns ...func(*kms.Options)) (*kms.GenerateMacOutput, error)
}

var _ MACClient = (*kms.Client)(nil)
