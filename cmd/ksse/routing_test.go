package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

// TestPutRoutingKey: put --routing-key routes every record of a partition
// key to the shard of its keyed hash (HMAC-SHA256 under the stream's
// routing secret, which GenerateMac gives), and tail reads them back. A key
// that is not HMAC_256 fails before anything is sent.
func TestPutRoutingKey(t *testing.T) {
	f := newMotoFixture(t, 4)
	ctx := t.Context()
	hk, err := f.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kmstypes.KeySpecHmac256, KeyUsage: kmstypes.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err)
	routing := aws.ToString(hk.KeyMetadata.Arn)

	var in strings.Builder
	for i := range 20 {
		fmt.Fprintf(&in, "routed %02d\n", i)
	}
	r := pipeRun(t, in.String(), "put", "--stream", f.stream, "--key-id", f.keyARN, "--routing-key", routing, "--partition-key", "user-1234")
	require.Equal(t, exitOK, r.code, r.stderr)

	mac, err := f.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: &routing, MacAlgorithm: kmstypes.MacAlgorithmSpecHmacSha256,
		Message: []byte("ksse v1 routing key\x00kinesis:" + f.stream)})
	require.NoError(t, err)
	h := hmac.New(sha256.New, mac.Mac)
	h.Write([]byte("user-1234"))
	want := new(big.Int).SetBytes(h.Sum(nil)[:16])
	shards, err := f.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(f.stream)})
	require.NoError(t, err)
	var wantShard string
	for _, sh := range shards.Shards {
		lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
		hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
		if want.Cmp(lo) >= 0 && want.Cmp(hi) <= 0 {
			wantShard = aws.ToString(sh.ShardId)
		}
	}
	require.NotEmpty(t, wantShard)

	r = runCLI(t, nil, "tail", "--stream", f.stream, "--key-arn", f.keyARN)
	require.Equal(t, exitOK, r.code, r.stderr)
	got := jsonLines(t, r.stdout)
	require.Len(t, got, 20)
	for i, g := range got {
		require.Equal(t, wantShard, g.ShardID, "every record on the shard of the keyed hash")
		require.Equal(t, "user-1234", g.PartitionKey)
		require.Equal(t, fmt.Sprintf("routed %02d", i), g.Data, "in order")
	}

	// The data key is no routing key: refused before anything is sent.
	r = pipeRun(t, "x\n", "put", "--stream", f.stream, "--key-id", f.keyARN, "--routing-key", f.keyARN)
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "must be an HMAC_256 KMS key")
	require.Len(t, f.rawRecords(t), 20, "nothing sent")
}
