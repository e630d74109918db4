package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/ksse-go/ksse/kmsiface"
	"github.com/ksse-go/ksse/record"
)

// keyFlags are the flags that say which KMS keys tail and decrypt trust:
// --key-arn (repeatable) or --any-key.
type keyFlags struct {
	keys   stringsFlag
	anyKey bool
}

const keyFlagsHelp = `
Trusted keys: a record is accepted only if its data key is of a KMS key
named with --key-arn (repeatable). A key ID, alias name (alias/NAME) or alias
ARN is resolved to its key ARN with KMS DescribeKey before reading. Without
--key-arn, --any-key must be given: records of any key the credentials may
decrypt with are then accepted, so they are only as authentic as the
credentials are narrow (anyone who can write to the stream and use such a
key can forge them). put --key-id takes any key ID or alias: it names the key
to encrypt under; --key-arn names the keys to trust.`

func (k *keyFlags) register(fs *flagSet) {
	fs.Var(&k.keys, "key-arn", "trust data keys of the KMS key `ARN` (a key ID or alias is resolved with DescribeKey; repeatable)")
	fs.BoolVar(&k.anyKey, "any-key", false, "trust any KMS key the credentials can decrypt with (insecure: records are only as authentic as the credentials are narrow)")
}

// check reports a usage error for neither or both of --key-arn and
// --any-key.
func (k *keyFlags) check() error {
	switch {
	case len(k.keys) == 0 && !k.anyKey:
		return usagef("name the KMS keys to trust with --key-arn ARN (repeatable; a key ID or alias is resolved), or pass --any-key to trust any key your credentials can decrypt with")
	case len(k.keys) > 0 && k.anyKey:
		return usagef("--any-key and --key-arn exclude each other")
	}
	return nil
}

// describeKeyAPI is the part of the KMS client that resolves keys.
type describeKeyAPI interface {
	DescribeKey(ctx context.Context, params *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
}

// resolve returns the key ARNs of --key-arn: key ARNs as given, key IDs and
// aliases resolved with DescribeKey. With --any-key it warns and returns
// nil.
func (k *keyFlags) resolve(ctx context.Context, c *cli, client describeKeyAPI) ([]string, error) {
	if k.anyKey {
		c.warnf("warning: --any-key: records of any KMS key your credentials can decrypt with are accepted; they are only as authentic as those credentials are narrow")
		return nil, nil
	}
	arns := make([]string, 0, len(k.keys))
	for _, id := range k.keys {
		if record.IsKeyARN(id) {
			arns = append(arns, id)
			continue
		}
		out, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			if errors.Is(kmsiface.Classify("DescribeKey", err), kmsiface.ErrKeyNotFound) {
				return nil, fmt.Errorf("--key-arn %q: KMS has no such key or alias", id)
			}
			return nil, fmt.Errorf("--key-arn %q: resolving it to a key ARN with KMS DescribeKey: %w", id, err)
		}
		var arn string
		if out.KeyMetadata != nil {
			arn = aws.ToString(out.KeyMetadata.Arn)
		}
		if !record.IsKeyARN(arn) {
			return nil, fmt.Errorf("--key-arn %q: KMS DescribeKey gave no key ARN (%q)", id, arn)
		}
		arns = append(arns, arn)
	}
	return arns, nil
}

// newDecryptor loads the AWS configuration and returns a Decryptor that
// trusts the keys of kf, the configuration and the key ARNs of --key-arn.
func (k *keyFlags) newDecryptor(ctx context.Context, c *cli, allowPlaintext bool) (*record.Decryptor, aws.Config, []string, error) {
	cfg, err := c.loadConfig(ctx)
	if err != nil {
		return nil, aws.Config{}, nil, err
	}
	kmsClient := kms.NewFromConfig(cfg)
	keyARNs, err := k.resolve(ctx, c, kmsClient)
	if err != nil {
		return nil, aws.Config{}, nil, err
	}
	dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) {
		o.AllowPlaintext = allowPlaintext
		o.AllowedKeys = keyARNs
		o.InsecureAllowAnyKey = k.anyKey
	})
	if err != nil {
		return nil, aws.Config{}, nil, err
	}
	return dec, cfg, keyARNs, nil
}
