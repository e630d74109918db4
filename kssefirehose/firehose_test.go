package kssefirehose_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/emulator/emulatortest"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/kssefirehose"
	"github.com/ksse-go/ksse/record"
)

func TestMain(m *testing.M) { emulatortest.Main(m) }

func newPair(t testing.TB) (*kmsfake.KMS, *record.Encryptor, *record.Decryptor) {
	t.Helper()
	k := kmsfake.New()
	_, arn := k.CreateKey(kmstypes.KeySpecSymmetricDefault)
	enc, err := record.NewEncryptor(k, arn)
	require.NoError(t, err)
	dec, err := record.NewDecryptor(k, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{arn} })
	require.NoError(t, err)
	t.Cleanup(func() {
		enc.Close()
		dec.Close()
	})
	return k, enc, dec
}

// fakeFirehose is a PutRecordAPI and PutRecordBatchAPI that delivers, as
// Firehose does to S3, the records of each call concatenated into one
// object.
type fakeFirehose struct {
	mu      sync.Mutex
	objects [][]byte
	// fail, if set, rejects the records at the indexes it returns true for.
	fail func(i int) bool
}

func (f *fakeFirehose) PutRecord(_ context.Context, in *firehose.PutRecordInput, _ ...func(*firehose.Options)) (*firehose.PutRecordOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects = append(f.objects, bytes.Clone(in.Record.Data))
	return &firehose.PutRecordOutput{RecordId: aws.String(fmt.Sprint(len(f.objects)))}, nil
}

func (f *fakeFirehose) PutRecordBatch(_ context.Context, in *firehose.PutRecordBatchInput, _ ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &firehose.PutRecordBatchOutput{FailedPutCount: aws.Int32(0)}
	var obj []byte
	for i, r := range in.Records {
		if f.fail != nil && f.fail(i) {
			*out.FailedPutCount++
			out.RequestResponses = append(out.RequestResponses, types.PutRecordBatchResponseEntry{
				ErrorCode: aws.String("ServiceUnavailableException"), ErrorMessage: aws.String("slow down")})
			continue
		}
		obj = append(obj, r.Data...)
		out.RequestResponses = append(out.RequestResponses, types.PutRecordBatchResponseEntry{RecordId: aws.String(fmt.Sprint(i))})
	}
	f.objects = append(f.objects, obj)
	return out, nil
}

func (f *fakeFirehose) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objects)
}

// readAll decrypts an object, stopping at the first error.
func readAll(t testing.TB, dec *record.Decryptor, stream string, obj []byte) ([]string, error) {
	t.Helper()
	r, err := kssefirehose.NewReader(dec, stream, bytes.NewReader(obj))
	require.NoError(t, err)
	var got []string
	for d, err := range r.All(context.Background()) {
		if err != nil {
			return got, err
		}
		got = append(got, string(d.Data))
	}
	return got, nil
}

func batch(data ...string) *firehose.PutRecordBatchInput {
	in := &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("clicks")}
	for _, d := range data {
		in.Records = append(in.Records, types.Record{Data: []byte(d)})
	}
	return in
}

func TestPutRecordBatch(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newPair(t)
	f := &fakeFirehose{}
	in := batch("one", "", "three")
	out, err := kssefirehose.PutRecordBatch(ctx, enc, f, in)
	require.NoError(t, err)
	require.EqualValues(t, 0, aws.ToInt32(out.FailedPutCount))
	require.Equal(t, batch("one", "", "three"), in, "the caller's input was modified")

	_, err = kssefirehose.PutRecord(ctx, enc, f, &firehose.PutRecordInput{
		DeliveryStreamName: aws.String("clicks"), Record: &types.Record{Data: []byte("four")},
	})
	require.NoError(t, err)

	require.Len(t, f.objects, 2)
	require.NotContains(t, string(f.objects[0]), "three")
	got, err := readAll(t, dec, "clicks", f.objects[0])
	require.NoError(t, err)
	require.Equal(t, []string{"one", "", "three"}, got)
	got, err = readAll(t, dec, "arn:aws:firehose:us-east-1:111122223333:deliverystream/clicks", f.objects[1])
	require.NoError(t, err)
	require.Equal(t, []string{"four"}, got)

	// Bound to the delivery stream: not another one, not a Kinesis stream
	// of the same name.
	_, err = readAll(t, dec, "views", f.objects[0])
	require.ErrorIs(t, err, envelope.ErrOpen)
	e, _, err := envelope.Parse(f.objects[1])
	require.NoError(t, err)
	_, err = dec.Decrypt(ctx, "clicks", f.objects[1][:e.Size()])
	require.ErrorIs(t, err, envelope.ErrOpen)
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	k, enc, _ := newPair(t)
	f := &fakeFirehose{}

	// The envelope size: Overhead + payload + wrapped key.
	small, err := kssefirehose.Encrypt(ctx, enc, "clicks", nil)
	require.NoError(t, err)
	wrapped := len(small) - envelope.Overhead
	largest := kssefirehose.MaxRecordSize - envelope.Overhead - wrapped
	env, err := kssefirehose.Encrypt(ctx, enc, "clicks", make([]byte, largest))
	require.NoError(t, err)
	require.Len(t, env, kssefirehose.MaxRecordSize)
	_, err = kssefirehose.Encrypt(ctx, enc, "clicks", make([]byte, largest+1))
	require.ErrorIs(t, err, record.ErrRecordTooLarge)

	calls := k.Calls("GenerateDataKey")
	for name, in := range map[string]*firehose.PutRecordBatchInput{
		"record too large": {DeliveryStreamName: aws.String("other"), Records: []types.Record{{Data: make([]byte, kssefirehose.MaxRecordSize)}}},
		"batch too large":  {DeliveryStreamName: aws.String("other"), Records: []types.Record{{Data: make([]byte, 900<<10)}, {Data: make([]byte, 900<<10)}, {Data: make([]byte, 900<<10)}, {Data: make([]byte, 900<<10)}, {Data: make([]byte, 900<<10)}}},
	} {
		_, err := kssefirehose.PutRecordBatch(ctx, enc, f, in)
		require.ErrorIs(t, err, record.ErrRecordTooLarge, name)
	}
	require.Equal(t, calls, k.Calls("GenerateDataKey"), "a KMS call for records over the limits")

	// 4 MiB in total, counted once encrypted: five records that fit in
	// plaintext but not with their envelopes.
	per := (kssefirehose.MaxBatchSize - 5*envelope.Overhead - 5) / 5
	in := &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("clicks")}
	for range 5 {
		in.Records = append(in.Records, types.Record{Data: make([]byte, per)})
	}
	_, err = kssefirehose.PutRecordBatch(ctx, enc, f, in)
	require.ErrorIs(t, err, record.ErrRecordTooLarge)

	_, err = kssefirehose.PutRecordBatch(ctx, enc, f, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("clicks"), Records: make([]types.Record, 501)})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	_, err = kssefirehose.PutRecordBatch(ctx, enc, f, batch())
	require.ErrorIs(t, err, record.ErrInvalidInput)
	_, err = kssefirehose.PutRecordBatch(ctx, enc, f, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("no/slash"), Records: []types.Record{{}}})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.ErrorContains(t, err, `stream "no/slash": want 1 to 128`)
	_, err = kssefirehose.PutRecord(ctx, enc, f, &firehose.PutRecordInput{DeliveryStreamName: aws.String("clicks")})
	require.ErrorIs(t, err, record.ErrInvalidInput)
	require.Zero(t, f.calls(), "a request was sent")

	// 500 records are fine.
	in = &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("clicks"), Records: make([]types.Record, 500)}
	_, err = kssefirehose.PutRecordBatch(ctx, enc, f, in)
	require.NoError(t, err)
}

func TestPartialFailure(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newPair(t)
	f := &fakeFirehose{fail: func(i int) bool { return i == 1 }}
	in := batch("a", "b", "c")
	out, err := kssefirehose.PutRecordBatch(ctx, enc, f, in)
	require.NotNil(t, out)
	require.EqualValues(t, 1, aws.ToInt32(out.FailedPutCount))
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{1}, be.Indexes())
	var se *record.ServiceError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "ServiceUnavailableException", se.Code)

	// Retry the caller's own record.
	f.fail = nil
	_, err = kssefirehose.PutRecordBatch(ctx, enc, f, &firehose.PutRecordBatchInput{
		DeliveryStreamName: in.DeliveryStreamName, Records: []types.Record{in.Records[be.Indexes()[0]]},
	})
	require.NoError(t, err)
	got, err := readAll(t, dec, "clicks", bytes.Join(f.objects, nil))
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c", "b"}, got)
}

func TestEncryptionFailure(t *testing.T) {
	ctx := context.Background()
	k, enc, _ := newPair(t)
	k.InjectFault("GenerateDataKey", kmsfake.Fault{Code: "DisabledException"}, 1)
	f := &fakeFirehose{}
	_, err := kssefirehose.PutRecordBatch(ctx, enc, f, batch("a", "b"))
	var be *record.BatchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{0, 1}, be.Indexes())
	require.ErrorIs(t, be.Failed[1].Err, record.ErrNotSent)
	require.NotErrorIs(t, be.Failed[0].Err, record.ErrNotSent)
	require.Zero(t, f.calls())
	require.EqualValues(t, 1, k.Calls("GenerateDataKey"), "one KMS failure should stop the batch")
}

// fakeHTTP is a Firehose endpoint for an SDK client: it answers PutRecord
// and PutRecordBatch and keeps each request's records and User-Agent.
type fakeHTTP struct {
	mu      sync.Mutex
	records [][][]byte
	uas     []string
	// results, if set, gives the RequestResponses of a PutRecordBatch of n
	// records, instead of one RecordId for each.
	results func(n int) []map[string]string
}

func (f *fakeHTTP) Do(req *http.Request) (*http.Response, error) {
	var in struct {
		Record  struct{ Data []byte }
		Records []struct{ Data []byte }
	}
	body, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uas = append(f.uas, req.Header.Get("User-Agent"))
	var recs [][]byte
	var out any
	if strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".PutRecordBatch") {
		var resp []map[string]string
		for _, r := range in.Records {
			recs = append(recs, r.Data)
			resp = append(resp, map[string]string{"RecordId": "id"})
		}
		if f.results != nil {
			resp = f.results(len(in.Records))
		}
		out = map[string]any{"FailedPutCount": 0, "RequestResponses": resp}
	} else {
		recs = append(recs, in.Record.Data)
		out = map[string]any{"RecordId": "id"}
	}
	f.records = append(f.records, recs)
	w := httptest.NewRecorder()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
	return w.Result(), nil
}

func fakeClient(f *fakeHTTP, optFns ...func(*firehose.Options)) *firehose.Client {
	return firehose.New(firehose.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://firehose.invalid"),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "fake-secret-access-key"}, nil
		}),
		HTTPClient: f,
	}, optFns...)
}

func TestWithEncryption(t *testing.T) {
	ctx := context.Background()
	_, enc, dec := newPair(t)
	f := &fakeHTTP{}
	client := fakeClient(f, kssefirehose.WithEncryption(enc))

	in := batch("one", "two")
	_, err := client.PutRecordBatch(ctx, in)
	require.NoError(t, err)
	require.Equal(t, batch("one", "two"), in)
	_, err = client.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("clicks"), Record: &types.Record{Data: []byte("three")}},
		kssefirehose.WithEncryption(enc)) // given twice: encrypted once
	require.NoError(t, err)

	// Fail closed.
	_, err = client.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("clicks"), Records: []types.Record{{Data: make([]byte, kssefirehose.MaxRecordSize)}}})
	require.ErrorIs(t, err, record.ErrRecordTooLarge)
	_, err = fakeClient(f, kssefirehose.WithEncryption(nil)).PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("clicks"), Record: &types.Record{Data: []byte("x")}})
	require.ErrorIs(t, err, record.ErrInvalidInput)

	require.Len(t, f.records, 2)
	got, err := readAll(t, dec, "clicks", bytes.Join(append(f.records[0], f.records[1]...), nil))
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two", "three"}, got)
	for _, ua := range f.uas {
		require.Equal(t, 1, strings.Count(ua, " ksse/"), "User-Agent %q", ua)
	}
}

// TestMotoDirectPutToS3 sends encrypted records to a DirectPut delivery
// stream of moto, which writes each batch to an S3 object, and decrypts
// the objects, streamed from S3, with a Reader. KMS is moto's too.
func TestMotoDirectPutToS3(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := emulatortest.Shared(t, emulator.Moto).AWSConfig()
	kmsClient := kms.NewFromConfig(cfg)
	key, err := kmsClient.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	enc, err := record.NewEncryptor(kmsClient, aws.ToString(key.KeyMetadata.Arn))
	require.NoError(t, err)
	defer enc.Close()
	dec, err := record.NewDecryptor(kmsClient, func(o *record.DecryptorOptions) { o.AllowedKeys = []string{aws.ToString(key.KeyMetadata.Arn)} })
	require.NoError(t, err)
	defer dec.Close()

	s3c := s3.NewFromConfig(cfg, emulator.S3Options)
	bucket := emulator.UniqueName("ksse-firehose")
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	fh := firehose.NewFromConfig(cfg)
	name := emulator.UniqueName("ksse-delivery")
	created, err := fh.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{
		DeliveryStreamName: aws.String(name),
		DeliveryStreamType: types.DeliveryStreamTypeDirectPut,
		ExtendedS3DestinationConfiguration: &types.ExtendedS3DestinationConfiguration{
			BucketARN: aws.String("arn:aws:s3:::" + bucket),
			RoleARN:   aws.String("arn:aws:iam::123456789012:role/firehose-test"),
		},
	})
	require.NoError(t, err)
	streamARN := aws.ToString(created.DeliveryStreamARN)

	// One batch through the functions, one through a client with the
	// option, one record alone: three objects.
	want := map[string]bool{}
	first := batch("alpha", "", string(bytes.Repeat([]byte{0xE5, 'K', 'S', 1}, 1000)))
	first.DeliveryStreamName = aws.String(name)
	_, err = kssefirehose.PutRecordBatch(ctx, enc, fh, first)
	require.NoError(t, err)
	want[fmt.Sprint([]string{"alpha", "", string(first.Records[2].Data)})] = true
	second := batch("beta", "gamma")
	second.DeliveryStreamName = aws.String(name)
	_, err = firehose.NewFromConfig(cfg, kssefirehose.WithEncryption(enc)).PutRecordBatch(ctx, second)
	require.NoError(t, err)
	want[fmt.Sprint([]string{"beta", "gamma"})] = true
	_, err = kssefirehose.PutRecord(ctx, enc, fh, &firehose.PutRecordInput{DeliveryStreamName: aws.String(name), Record: &types.Record{Data: []byte("delta")}})
	require.NoError(t, err)
	want[fmt.Sprint([]string{"delta"})] = true

	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	// Three objects, or more when the SDK retried a call that moto had
	// served (moto now and then closes a connection after answering): each
	// extra object must then repeat a batch, as Firehose's at-least-once
	// delivery allows.
	require.GreaterOrEqual(t, len(list.Contents), 3)
	seen := map[string]bool{}
	for _, obj := range list.Contents {
		got, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: obj.Key})
		require.NoError(t, err)
		r, err := kssefirehose.NewReader(dec, streamARN, got.Body)
		require.NoError(t, err)
		var recs []string
		for d, err := range r.All(ctx) {
			require.NoError(t, err, aws.ToString(obj.Key))
			recs = append(recs, string(d.Data))
		}
		got.Body.Close()
		key := fmt.Sprint(recs)
		if seen[key] {
			t.Logf("object %s repeats a batch (a retried call)", aws.ToString(obj.Key))
			continue
		}
		require.True(t, want[key], "object %s: unexpected records %q", aws.ToString(obj.Key), recs)
		delete(want, key)
		seen[key] = true
	}
	require.Empty(t, want)
}

// shortFirehose answers PutRecordBatch with fewer results than records, or
// results without a RecordId, and no FailedPutCount.
type shortFirehose struct{ missingID bool }

func (f shortFirehose) PutRecordBatch(_ context.Context, in *firehose.PutRecordBatchInput, _ ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error) {
	out := &firehose.PutRecordBatchOutput{FailedPutCount: aws.Int32(0)}
	for i := range in.Records {
		switch {
		case f.missingID && i == 1:
			out.RequestResponses = append(out.RequestResponses, types.PutRecordBatchResponseEntry{})
		case !f.missingID && i == len(in.Records)-1:
		default:
			out.RequestResponses = append(out.RequestResponses, types.PutRecordBatchResponseEntry{RecordId: aws.String("id")})
		}
	}
	return out, nil
}

// TestInconsistentResponse: records are delivered only if their result says
// so, whatever FailedPutCount says.
func TestInconsistentResponse(t *testing.T) {
	_, enc, _ := newPair(t)
	var be *record.BatchError
	_, err := kssefirehose.PutRecordBatch(context.Background(), enc, shortFirehose{}, batch("a", "b", "c"))
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{0, 1, 2}, be.Indexes())
	_, err = kssefirehose.PutRecordBatch(context.Background(), enc, shortFirehose{missingID: true}, batch("a", "b", "c"))
	require.ErrorAs(t, err, &be)
	require.Equal(t, []int{1}, be.Indexes())
}

// TestWithEncryptionInconsistentResponse: through the client option too,
// a record is delivered only if its result says so. A response with fewer
// or more results than records, or a result without a RecordId, and a
// FailedPutCount of 0, comes out with an ErrorCode on every record that
// Firehose did not acknowledge and FailedPutCount counting them.
func TestWithEncryptionInconsistentResponse(t *testing.T) {
	ctx := context.Background()
	_, enc, _ := newPair(t)
	ids := func(n int) []map[string]string {
		var rs []map[string]string
		for range n {
			rs = append(rs, map[string]string{"RecordId": "id"})
		}
		return rs
	}
	for _, tc := range []struct {
		name    string
		results func(n int) []map[string]string
		failed  []int
	}{
		{"fewer results", func(n int) []map[string]string { return ids(n - 1) }, []int{0, 1, 2}},
		{"no results", func(int) []map[string]string { return nil }, []int{0, 1, 2}},
		{"more results", func(n int) []map[string]string { return ids(n + 1) }, []int{0, 1, 2}},
		{"a result without RecordId", func(n int) []map[string]string {
			rs := ids(n)
			rs[1] = map[string]string{}
			return rs
		}, []int{1}},
		{"one rejected", func(n int) []map[string]string {
			rs := ids(n)
			rs[2] = map[string]string{"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
			return rs
		}, []int{2}},
		{"consistent", ids, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeHTTP{results: tc.results}
			out, err := fakeClient(f, kssefirehose.WithEncryption(enc)).PutRecordBatch(ctx, batch("a", "b", "c"))
			require.NoError(t, err)
			require.Len(t, out.RequestResponses, 3)
			require.EqualValues(t, len(tc.failed), aws.ToInt32(out.FailedPutCount))
			var failed []int
			for i, r := range out.RequestResponses {
				if r.ErrorCode != nil {
					failed = append(failed, i)
					require.Nil(t, r.RecordId, "record %d", i)
				} else {
					require.Equal(t, "id", aws.ToString(r.RecordId), "record %d", i)
				}
			}
			require.Equal(t, tc.failed, failed)
			if tc.name == "one rejected" {
				require.Equal(t, "ServiceUnavailableException", aws.ToString(out.RequestResponses[2].ErrorCode))
			}
		})
	}
}
