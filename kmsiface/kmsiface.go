// Package kmsiface declares the AWS KMS operations that ksse calls, and
// sorts KMS failures into error classes.
//
// Each caller takes the narrowest interface it needs:
//
//   - [DataKeyGenerator]: a producer's key cache.
//   - [Decrypter]: a consumer's key cache.
//   - [KeyDescriber]: checking a key before use.
//   - [MACGenerator]: keyed routing.
//
// [Client] is the union of the first three. The method signatures are
// copied from github.com/aws/aws-sdk-go-v2/service/kms, so a *kms.Client
// satisfies every interface unchanged:
//
//	var c kmsiface.Client = kms.NewFromConfig(cfg)
//
// Tests can use package github.com/ksse-go/ksse/kmstest instead: an
// in-memory KMS that satisfies [Client].
//
// Implementations must be safe for concurrent use, as *kms.Client is.
package kmsiface

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// DataKeyGenerator is the KMS operation of a producer.
type DataKeyGenerator interface {
	// GenerateDataKey is (*kms.Client).GenerateDataKey: a new data key,
	// in plaintext and wrapped, under the encryption context given.
	GenerateDataKey(ctx context.Context, params *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
}

// Decrypter is the KMS operation of a consumer.
type Decrypter interface {
	// Decrypt is (*kms.Client).Decrypt: it unwraps a data key, for the
	// same encryption context.
	Decrypt(ctx context.Context, params *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// KeyDescriber is the KMS operation that checks a key before use.
type KeyDescriber interface {
	// DescribeKey is (*kms.Client).DescribeKey.
	DescribeKey(ctx context.Context, params *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
}

// MACGenerator is the KMS operation of keyed routing (record's
// EncryptorOptions.RoutingKey).
type MACGenerator interface {
	// GenerateMac is (*kms.Client).GenerateMac: an HMAC of a message under
	// an HMAC KMS key.
	GenerateMac(ctx context.Context, params *kms.GenerateMacInput, optFns ...func(*kms.Options)) (*kms.GenerateMacOutput, error)
}

// Client is every KMS operation that ksse calls on the data path.
//
// Producers call GenerateDataKey about once per cache TTL. Consumers call
// Decrypt once per distinct wrapped key. DescribeKey checks a key before
// it is used.
type Client interface {
	DataKeyGenerator
	Decrypter
	KeyDescriber
}

var (
	_ Client       = (*kms.Client)(nil)
	_ MACGenerator = (*kms.Client)(nil)
)
