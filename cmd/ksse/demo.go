package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ksse-go/ksse/envelope"
	"github.com/ksse-go/ksse/internal/emulator"
	"github.com/ksse-go/ksse/internal/hashkey"
	"github.com/ksse-go/ksse/internal/kmsfake"
	"github.com/ksse-go/ksse/record"
)

const demoSynopsis = "[--key-id K] [--records N] [--embedded]"

const demoDescription = `
Runs ksse end to end with real records: creates a Kinesis stream with 2
shards, encrypts records and sends them with PutRecords, reads them back with
GetRecords, decrypts them with a consumer that trusts the demo's KMS key only
and verifies them, shows that tampered records are rejected, and prints what
it did: records, plaintext and ciphertext sizes, per-record overhead, shard
placement, KMS calls. The last line is
"demo: OK …" on success; any check that fails ends it with "demo: FAILED …"
and exit status 1.

Where it runs:

  - Embedded default, with no AWS endpoint configured (AWS_ENDPOINT_URL,
    AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_KMS) and no --key-id, or with
    --embedded: Kinesis on a moto server that the demo starts (python3 -m
    moto.server; pip install 'moto[server]'), KMS on the ksse test KMS
    (package kmstest) served over HTTP to a real KMS client. Nothing leaves
    the machine.
  - Otherwise the standard AWS configuration: a real AWS account needs
    --key-id (a symmetric KMS key you may use); the demo creates a temporary
    stream named ksse-demo-<random> (2 provisioned shards, a few minutes of
    shard-hours) and deletes it at the end. With an endpoint that overrides
    KMS (a local emulator) and no --key-id, it creates a KMS key there and
    schedules its deletion at the end.`

func cmdDemo(ctx context.Context, c *cli, args []string) error {
	keyID, n, embedded, err := parseDemoArgs(c, args)
	if err != nil {
		return err
	}
	kinesisEndpoint := envSet("AWS_ENDPOINT_URL") || envSet("AWS_ENDPOINT_URL_KINESIS")
	kmsEndpoint := envSet("AWS_ENDPOINT_URL") || envSet("AWS_ENDPOINT_URL_KMS")

	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	d := &demo{w: c.stdout, n: n, keyID: keyID}
	var cleanup func()
	if embedded || (keyID == "" && !kinesisEndpoint && !kmsEndpoint) {
		cleanup, err = d.startEmbedded(ctx)
	} else {
		cleanup, err = d.connect(ctx, c, kinesisEndpoint, kmsEndpoint)
	}
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return err
	}

	summary, err := d.run(ctx)
	if err != nil {
		d.printf("FAILED: %v", err)
		return errReported
	}
	d.printf("OK: %s", summary)
	return nil
}

// parseDemoArgs parses and checks the arguments of demo.
func parseDemoArgs(c *cli, args []string) (keyID string, n int, embedded bool, err error) {
	fs := newFlagSet(c, demoSynopsis, demoDescription)
	fs.StringVar(&keyID, "key-id", "", "KMS key to encrypt under (required with real AWS)")
	fs.IntVar(&n, "records", 20, "number of records, 1 to 500")
	fs.BoolVar(&embedded, "embedded", false, "use the embedded default even if AWS is configured")
	pos, err := parseArgs(fs, args)
	switch {
	case err != nil:
		return "", 0, false, err
	case len(pos) > 0:
		return "", 0, false, usagef("unexpected argument %q", pos[0])
	case n < 1 || n > record.MaxPutRecordsEntries:
		return "", 0, false, usagef("--records must be 1 to %d", record.MaxPutRecordsEntries)
	case embedded && keyID != "":
		return "", 0, false, usagef("--key-id names a key of a configured KMS: it cannot be used with --embedded")
	}
	return keyID, n, embedded, nil
}

// startEmbedded starts moto for Kinesis and the test KMS, and points d at
// them. cleanup, if not nil, stops them.
func (d *demo) startEmbedded(ctx context.Context) (cleanup func(), err error) {
	moto, err := emulator.Moto.Start(ctx)
	if err != nil {
		if errors.Is(err, emulator.ErrNotInstalled) {
			return nil, fmt.Errorf("the embedded default runs Kinesis on moto, which is not installed (pip install 'moto[server]'); or configure AWS and pass --key-id: %w", err)
		}
		return nil, fmt.Errorf("starting moto: %w", err)
	}
	d.testKMS = kmsfake.New()
	_, d.keyID = d.testKMS.CreateKey(kmstypes.KeySpecSymmetricDefault)
	ks := kmsfake.NewServer(d.testKMS)
	d.kms = ks.Client()
	d.kinesis = kinesis.NewFromConfig(moto.AWSConfig())
	d.waitDelay = 100 * time.Millisecond
	d.printf("embedded default: Kinesis on moto at %s, KMS on the ksse test KMS (kmstest) at %s", moto.URL(), ks.URL())
	return func() {
		ks.Close()
		moto.Close()
	}, nil
}

// connect points d at the configured AWS endpoints. Without a key, it
// creates one on a KMS emulator; cleanup, if not nil, schedules its
// deletion.
func (d *demo) connect(ctx context.Context, c *cli, kinesisEndpoint, kmsEndpoint bool) (cleanup func(), err error) {
	cfg, err := c.loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	d.kms = kms.NewFromConfig(cfg)
	d.kinesis = kinesis.NewFromConfig(cfg)
	d.waitDelay = time.Second
	where := "AWS (region " + cfg.Region + ")"
	if kinesisEndpoint || kmsEndpoint {
		where = fmt.Sprintf("the configured endpoints (Kinesis %s, KMS %s; region %s)", endpointOf("KINESIS"), endpointOf("KMS"), cfg.Region)
	}
	d.printf("using %s", where)
	if d.keyID != "" {
		return nil, nil
	}
	if !kmsEndpoint {
		return nil, usagef("--key-id is required with AWS KMS (or set AWS_ENDPOINT_URL_KMS to an emulator, or use --embedded)")
	}
	out, err := d.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("ksse demo (temporary)")})
	if err != nil {
		return nil, fmt.Errorf("CreateKey: %w", err)
	}
	d.keyID = aws.ToString(out.KeyMetadata.Arn)
	created := out.KeyMetadata.KeyId // by ID: moto fails ScheduleKeyDeletion of an ARN
	return func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := d.kms.ScheduleKeyDeletion(cctx, &kms.ScheduleKeyDeletionInput{KeyId: created, PendingWindowInDays: aws.Int32(7)}); err != nil {
			c.warnf("could not schedule the deletion of KMS key %s: %v", d.keyID, err)
		}
	}, nil
}

func envSet(name string) bool { return os.Getenv(name) != "" }

func endpointOf(service string) string {
	if v := os.Getenv("AWS_ENDPOINT_URL_" + service); v != "" {
		return v
	}
	if v := os.Getenv("AWS_ENDPOINT_URL"); v != "" {
		return v
	}
	return "AWS"
}

// demo is one run of the demonstration.
type demo struct {
	w         io.Writer
	n         int
	keyID     string
	kms       *kms.Client
	kinesis   *kinesis.Client
	testKMS   *kmsfake.KMS // the embedded KMS, for its own call counts
	waitDelay time.Duration
}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.w, "demo: "+format+"\n", args...)
}

// demoShard is a shard of the demo stream.
type demoShard struct {
	id         string
	start, end *big.Int
}

// sentRecord is a record of the demo: what was sent and what came back.
type sentRecord struct {
	partitionKey string
	payload      []byte
	shardID      string // where PutRecords put it
	expected     string // where its plaintext partition key routes it
	read         bool
}

// demoPosition is where a record is in the stream: a sequence number is
// unique within its shard (moto numbers each shard from 1).
type demoPosition struct{ shard, seq string }

// demoBatch is what the demo sent.
type demoBatch struct {
	recs         []sentRecord
	sentAt       map[demoPosition]int // index in recs
	placed       int                  // records on the shard of their plaintext partition key
	payloadBytes int
	pkBytes      int
}

// run runs the demonstration and returns the summary of the final line.
func (d *demo) run(ctx context.Context) (string, error) {
	d.printf("KMS key %s", d.keyID)
	name, shards, cleanup, err := d.createStream(ctx)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		return "", err
	}
	ids := make([]string, len(shards))
	for i, s := range shards {
		ids[i] = s.id
	}
	d.printf("created stream %s with %d shards (%s)", name, len(shards), strings.Join(ids, ", "))

	enc, err := record.NewEncryptor(d.kms, d.keyID)
	if err != nil {
		return "", err
	}
	defer enc.Close()
	dec, allowKey, err := d.newConsumer(ctx)
	if err != nil {
		return "", err
	}
	defer dec.Close()

	b, err := d.produce(ctx, enc, name, shards)
	if err != nil {
		return "", err
	}
	raw, err := d.consume(ctx, name, shards, b)
	if err != nil {
		return "", err
	}
	// Keep the raw bytes of one record for the tampering checks, since
	// DecryptRecords decrypts in place.
	sample := slices.Clone(raw[0].rec.Data)
	if err := d.decryptAndVerify(ctx, dec, name, shards, raw, b); err != nil {
		return "", err
	}
	probeCalls, err := d.checkTampering(ctx, dec, allowKey, name, sample)
	if err != nil {
		return "", err
	}
	return d.countKMSCalls(enc, dec, probeCalls, len(shards))
}

// newConsumer returns a Decryptor that trusts the demo's key only, by its
// ARN (strict mode), and the option that says so.
func (d *demo) newConsumer(ctx context.Context) (*record.Decryptor, func(*record.DecryptorOptions), error) {
	keyARN := d.keyID
	if !record.IsKeyARN(keyARN) {
		out, err := d.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(d.keyID)})
		if err != nil {
			return nil, nil, fmt.Errorf("resolving %s to a key ARN: DescribeKey: %w", d.keyID, err)
		}
		if out.KeyMetadata != nil {
			keyARN = aws.ToString(out.KeyMetadata.Arn) // NewDecryptor refuses anything else
		}
	}
	allowKey := func(o *record.DecryptorOptions) { o.AllowedKeys = []string{keyARN} }
	dec, err := record.NewDecryptor(d.kms, allowKey)
	if err != nil {
		return nil, nil, err
	}
	d.printf("the consumer trusts data keys of %s only (DecryptorOptions.AllowedKeys)", keyARN)
	return dec, allowKey, nil
}

// produce encrypts the demo's records and sends them with PutRecords.
func (d *demo) produce(ctx context.Context, enc *record.Encryptor, name string, shards []demoShard) (*demoBatch, error) {
	b := &demoBatch{recs: make([]sentRecord, d.n), sentAt: map[demoPosition]int{}}
	entries := make([]types.PutRecordsRequestEntry, d.n)
	for i := range b.recs {
		customer := i%8 + 1
		r := &b.recs[i]
		r.partitionKey = fmt.Sprintf("customer-%d", customer)
		r.payload = fmt.Appendf(nil, `{"order":%d,"customer":%d,"item":"%s","cents":%d}`, 1001+i, customer, demoItems[i%len(demoItems)], 199+137*i%4000)
		r.expected = shardFor(shards, r.partitionKey)
		entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(r.partitionKey), Data: r.payload}
		b.payloadBytes += len(r.payload)
		b.pkBytes += len(r.partitionKey)
	}
	out, err := enc.PutRecords(ctx, d.kinesis, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
	if err != nil {
		return nil, fmt.Errorf("PutRecords: %w", err)
	}
	for i, r := range out.Records {
		b.recs[i].shardID = aws.ToString(r.ShardId)
		b.sentAt[demoPosition{b.recs[i].shardID, aws.ToString(r.SequenceNumber)}] = i
		if b.recs[i].shardID == b.recs[i].expected {
			b.placed++
		}
	}
	d.printf("sent %d records with Encryptor.PutRecords (1 PutRecords call): %d accepted", d.n, len(out.Records))
	d.printf("plaintext: %d bytes of payload + %d bytes of partition keys (%.1f + %.1f per record)",
		b.payloadBytes, b.pkBytes, float64(b.payloadBytes)/float64(d.n), float64(b.pkBytes)/float64(d.n))
	return b, nil
}

// consume reads the raw records back as the stream holds them, and checks
// that none shows its plaintext.
func (d *demo) consume(ctx context.Context, name string, shards []demoShard, b *demoBatch) ([]rawRecord, error) {
	raw, calls, err := d.readAll(ctx, name, shards)
	if err != nil {
		return nil, err
	}
	if len(raw) != d.n {
		return nil, fmt.Errorf("read back %d records, want %d", len(raw), d.n)
	}
	var wireBytes int
	var wrappedKeyLen int
	for _, r := range raw {
		wireBytes += len(r.rec.Data)
		if err := checkOnWire(r.rec, b.recs); err != nil {
			return nil, err
		}
		e, _, err := envelope.Parse(r.rec.Data)
		if err != nil {
			return nil, fmt.Errorf("record %s on the wire is not an envelope", aws.ToString(r.rec.SequenceNumber))
		}
		wrappedKeyLen = len(e.WrappedKey)
	}
	d.printf("read back %d records with GetRecords (%d calls); on the wire: %d bytes of Data (%.1f per record), partition key %q on every record, no plaintext payload or partition key in any record",
		len(raw), calls, wireBytes, float64(wireBytes)/float64(d.n), record.OutboundPartitionKey)
	d.printf("overhead: %.1f bytes per record = %d (envelope) + %d (KMS-wrapped data key) + %.1f (the partition key, now inside the envelope)",
		float64(wireBytes-b.payloadBytes)/float64(d.n), envelope.Overhead, wrappedKeyLen, float64(b.pkBytes)/float64(d.n))
	return raw, nil
}

// checkOnWire checks that a record read from the stream has the outbound
// partition key and contains no plaintext payload or partition key of recs.
func checkOnWire(rec types.Record, recs []sentRecord) error {
	if aws.ToString(rec.PartitionKey) != record.OutboundPartitionKey {
		return fmt.Errorf("record %s has partition key %q on the wire, want %q", aws.ToString(rec.SequenceNumber), aws.ToString(rec.PartitionKey), record.OutboundPartitionKey)
	}
	for j := range recs {
		if bytes.Contains(rec.Data, recs[j].payload) || bytes.Contains(rec.Data, []byte(recs[j].partitionKey)) {
			return fmt.Errorf("record %s on the wire contains a plaintext payload or partition key", aws.ToString(rec.SequenceNumber))
		}
	}
	return nil
}

// decryptAndVerify decrypts copies of the raw records and checks that each
// is a record sent, read once, equal to what was sent, and on the shard of
// its plaintext partition key.
func (d *demo) decryptAndVerify(ctx context.Context, dec *record.Decryptor, name string, shards []demoShard, raw []rawRecord, b *demoBatch) error {
	plain := make([]types.Record, len(raw))
	for i, r := range raw {
		plain[i] = r.rec
		plain[i].Data = slices.Clone(r.rec.Data)
	}
	if err := dec.DecryptRecords(ctx, name, plain); err != nil {
		return fmt.Errorf("DecryptRecords: %w", err)
	}
	perShard := map[string]int{}
	for i, p := range plain {
		j, ok := b.sentAt[demoPosition{raw[i].shard, aws.ToString(p.SequenceNumber)}]
		if !ok {
			return fmt.Errorf("read a record that the demo did not send: %s", aws.ToString(p.SequenceNumber))
		}
		r := &b.recs[j]
		if r.read {
			return fmt.Errorf("record %s read twice", aws.ToString(p.SequenceNumber))
		}
		r.read = true
		if aws.ToString(p.PartitionKey) != r.partitionKey || !bytes.Equal(p.Data, r.payload) {
			return fmt.Errorf("record %s decrypted to something else than was sent", aws.ToString(p.SequenceNumber))
		}
		if p.EncryptionType != types.EncryptionTypeKms {
			return fmt.Errorf("record %s: EncryptionType %q, want KMS", aws.ToString(p.SequenceNumber), p.EncryptionType)
		}
		perShard[raw[i].shard]++
	}
	d.printf("decrypted %d records with DecryptRecords: every payload and partition key equals what was sent", len(plain))
	var placement []string
	for _, s := range shards {
		placement = append(placement, fmt.Sprintf("%s: %d", s.id, perShard[s.id]))
	}
	if b.placed != d.n {
		return fmt.Errorf("shard placement: %d of %d records on the shard of their plaintext partition key", b.placed, d.n)
	}
	d.printf("shard placement equals plaintext placement: %d/%d records on the shard their partition key hashes to (%s)", b.placed, d.n, strings.Join(placement, ", "))
	return nil
}

// checkTampering checks that a flipped bit of the body of sample fails
// authentication without a KMS call (the data key is cached), and that
// sample presented as another stream's fails too. The latter is checked
// with a separate Decryptor, whose KMS calls it returns.
func (d *demo) checkTampering(ctx context.Context, dec *record.Decryptor, allowKey func(*record.DecryptorOptions), name string, sample []byte) (probeCalls uint64, err error) {
	e, _, _ := envelope.Parse(sample)
	tampered := slices.Clone(sample)
	tampered[envelope.HeaderSize+len(e.Body)/2] ^= 0x01
	if _, err := dec.Decrypt(ctx, name, tampered); !errors.Is(err, envelope.ErrOpen) {
		return 0, fmt.Errorf("a record with one flipped bit was not rejected: %v", err)
	}
	probe, err := record.NewDecryptor(d.kms, allowKey)
	if err != nil {
		return 0, err
	}
	defer probe.Close()
	if _, err := probe.Decrypt(ctx, name+"-elsewhere", sample); !errors.Is(err, envelope.ErrOpen) {
		return 0, fmt.Errorf("a record presented as another stream's was not rejected: %v", err)
	}
	d.printf("tampering: a record with one flipped bit is rejected (%v); the same record presented as another stream's is rejected", envelope.ErrOpen)
	return probe.Stats().KMSCalls, nil
}

// countKMSCalls prints the KMS calls of the producer and the consumer,
// checks them against the test KMS's own counts if there is one, and returns
// the summary of the final line.
func (d *demo) countKMSCalls(enc *record.Encryptor, dec *record.Decryptor, probeCalls uint64, shards int) (string, error) {
	gdk, dk := enc.Stats().KMSCalls, dec.Stats().KMSCalls
	d.printf("KMS calls: %d GenerateDataKey (producer; the data key is cached for 5 minutes), %d Decrypt (consumer; one per data key) for %d records", gdk, dk, d.n)
	if d.testKMS != nil {
		sgdk, sdk := d.testKMS.Calls("GenerateDataKey"), d.testKMS.Calls("Decrypt")
		if uint64(sgdk) != gdk || uint64(sdk) != dk+probeCalls {
			return "", fmt.Errorf("the test KMS counted %d GenerateDataKey and %d Decrypt calls, the caches %d and %d", sgdk, sdk, gdk, dk+probeCalls)
		}
		d.printf("the test KMS server counted the same calls")
	}
	return fmt.Sprintf("%d records encrypted, sent to a stream of %d shards, read back, decrypted and verified with %d KMS calls", d.n, shards, gdk+dk), nil
}

var demoItems = []string{"tea", "coffee", "scones", "jam", "bread", "cheese", "apples"}

// createStream creates the demo stream with 2 shards and waits until it is
// active. cleanup, if not nil, deletes it.
func (d *demo) createStream(ctx context.Context) (name string, shards []demoShard, cleanup func(), err error) {
	var b [6]byte
	rand.Read(b[:])
	name = "ksse-demo-" + hex.EncodeToString(b[:])
	_, err = d.kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{
		StreamName:        aws.String(name),
		ShardCount:        aws.Int32(2),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeProvisioned},
	})
	if err != nil {
		return "", nil, nil, fmt.Errorf("CreateStream: %w", err)
	}
	cleanup = func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := d.kinesis.DeleteStream(cctx, &kinesis.DeleteStreamInput{StreamName: aws.String(name), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
			d.printf("could not delete stream %s: %v", name, err)
			return
		}
		d.printf("deleted stream %s", name)
	}
	w := kinesis.NewStreamExistsWaiter(d.kinesis, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = d.waitDelay
		o.MaxDelay = max(d.waitDelay, 5*time.Second)
	})
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 5*time.Minute); err != nil {
		return name, nil, cleanup, fmt.Errorf("waiting for stream %s: %w", name, err)
	}
	out, err := d.kinesis.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		return name, nil, cleanup, fmt.Errorf("ListShards: %w", err)
	}
	for _, s := range out.Shards {
		start, ok1 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
		end, ok2 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
		if !ok1 || !ok2 {
			return name, nil, cleanup, fmt.Errorf("shard %s has an invalid hash key range", aws.ToString(s.ShardId))
		}
		shards = append(shards, demoShard{id: aws.ToString(s.ShardId), start: start, end: end})
	}
	return name, shards, cleanup, nil
}

// shardFor returns the shard that a plaintext partition key routes to.
func shardFor(shards []demoShard, partitionKey string) string {
	h, _ := new(big.Int).SetString(hashkey.Of(partitionKey), 10)
	for _, s := range shards {
		if h.Cmp(s.start) >= 0 && h.Cmp(s.end) <= 0 {
			return s.id
		}
	}
	return ""
}

// rawRecord is a record as read from a shard.
type rawRecord struct {
	shard string
	rec   types.Record
}

// readAll reads every shard from its start until it has d.n records or the
// shards are caught up, and returns the records and the number of
// GetRecords calls.
func (d *demo) readAll(ctx context.Context, name string, shards []demoShard) ([]rawRecord, int, error) {
	iters := make([]*string, len(shards))
	for i, s := range shards {
		out, err := d.kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName:        aws.String(name),
			ShardId:           aws.String(s.id),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			return nil, 0, fmt.Errorf("GetShardIterator %s: %w", s.id, err)
		}
		iters[i] = out.ShardIterator
	}
	var raw []rawRecord
	calls := 0
	deadline := time.Now().Add(time.Minute)
	for len(raw) < d.n {
		if time.Now().After(deadline) {
			return raw, calls, fmt.Errorf("read %d of %d records in a minute", len(raw), d.n)
		}
		idle := true
		for i, s := range shards {
			if iters[i] == nil {
				continue
			}
			out, err := d.kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iters[i]})
			calls++
			if err != nil {
				return nil, calls, fmt.Errorf("GetRecords %s: %w", s.id, err)
			}
			for _, r := range out.Records {
				raw = append(raw, rawRecord{shard: s.id, rec: r})
			}
			if len(out.Records) > 0 {
				idle = false
			}
			iters[i] = out.NextShardIterator
		}
		if idle && len(raw) < d.n {
			if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
				return raw, calls, err
			}
		}
	}
	return raw, calls, nil
}
