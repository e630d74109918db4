package motoserver

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the AWS region of the configurations returned by [AWSConfig].
const Region = "us-east-1"

// AccessKeyID and SecretAccessKey are the static credentials of the
// configurations returned by [AWSConfig]; moto accepts any. The secret is
// longer than the customary "test" because SigV4 uses "AWS4"+secret as an
// HMAC key, and under GODEBUG=fips140=only crypto/hmac panics on keys
// shorter than 112 bits (14 bytes).
const (
	AccessKeyID     = "test"
	SecretAccessKey = "test-secret-access-key"
)

// RetryMaxAttempts is the number of attempts (first try included) that the
// standard retryer of [AWSConfig] makes per call.
const RetryMaxAttempts = 5

// AWSConfig returns an aws.Config for the moto server at url: region
// us-east-1, the static credentials [AccessKeyID] and [SecretAccessKey], the
// BaseEndpoint url, and the SDK's standard retryer with [RetryMaxAttempts]
// attempts. It reads nothing from the environment or ~/.aws, so the
// developer's real AWS settings cannot leak into tests.
//
// The result suits kms.NewFromConfig, kinesis.NewFromConfig and
// firehose.NewFromConfig as is; for S3, pass [S3Options]:
//
//	s3.NewFromConfig(cfg, motoserver.S3Options)
func AWSConfig(url string) aws.Config {
	return aws.Config{
		Region:           Region,
		Credentials:      aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		BaseEndpoint:     aws.String(url),
		RetryMaxAttempts: RetryMaxAttempts,
		RetryMode:        aws.RetryModeStandard,
		Retryer: func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = RetryMaxAttempts
			})
		},
	}
}

// AWSConfig returns [AWSConfig](s.URL()).
func (s *Server) AWSConfig() aws.Config { return AWSConfig(s.url) }

// S3Options sets path-style addressing ("http://host/bucket/key"), which
// moto needs because "bucket.127.0.0.1" does not resolve. Use it as
// s3.NewFromConfig(cfg, motoserver.S3Options).
func S3Options(o *s3.Options) { o.UsePathStyle = true }
