// Firehose objects delivered to S3 by moto, read with readFirehoseObject.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { FirehoseClient, CreateDeliveryStreamCommand, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { S3Client, CreateBucketCommand, ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';

import { Decryptor, Encryptor, OpenError, readFirehoseObject } from '../src/index.js';
import { KMSClient, clientConfig, createKey, startMoto, unique } from '../testlib/moto.js';

let moto;
let kms;
let s3;
let firehose;
let key;

before(async () => {
  moto = await startMoto();
  if (!moto) return;
  const cfg = clientConfig(moto.endpoint);
  kms = new KMSClient(cfg);
  s3 = new S3Client({ ...cfg, forcePathStyle: true });
  firehose = new FirehoseClient(cfg);
  key = await createKey(kms);
});

after(() => {
  kms?.destroy();
  s3?.destroy();
  firehose?.destroy();
  moto?.stop();
});

function needMoto(t) {
  if (!moto) t.skip('moto is not available');
  return !moto;
}

/** Creates a delivery stream to a new bucket. */
async function deliveryStream(name) {
  const bucket = `ksse-${name}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await firehose.send(new CreateDeliveryStreamCommand({
    DeliveryStreamName: name,
    DeliveryStreamType: 'DirectPut',
    ExtendedS3DestinationConfiguration: { BucketARN: `arn:aws:s3:::${bucket}`, RoleARN: 'arn:aws:iam::123456789012:role/firehose' },
  }));
  return bucket;
}

/** Returns the bodies of every object of a bucket, as SDK streams. */
async function objects(bucket) {
  const list = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
  const out = [];
  for (const o of list.Contents ?? []) out.push((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }))).Body);
  return out;
}

/** Collects the entries of a reader. */
async function collect(it) {
  const out = [];
  for await (const e of it) out.push(e);
  return out;
}

test('records delivered by Firehose to S3 are read back in order', async (t) => {
  if (needMoto(t)) return;
  const name = unique('events');
  const bucket = await deliveryStream(name);
  const enc = new Encryptor({ kms, keyId: key });
  const payloads = [Buffer.alloc(0), Buffer.from('{"n":1}\n'), crypto.randomBytes(25 * 1024), ...Array.from({ length: 40 }, (_, i) => Buffer.from(`record ${i}`))];
  const records = [];
  for (const p of payloads) records.push({ Data: await enc.encryptFirehose(name, p) });
  const res = await firehose.send(new PutRecordBatchCommand({ DeliveryStreamName: name, Records: records }));
  assert.equal(res.FailedPutCount, 0);
  const [body, ...more] = await objects(bucket);
  assert.equal(more.length, 0);
  assert.ok(body instanceof Readable, 'the SDK gives a Readable');
  const dec = new Decryptor({ kms, allowedKeyArns: [key] });
  const got = await collect(readFirehoseObject(dec, `arn:aws:firehose:us-east-1:123456789012:deliverystream/${name}`, body));
  assert.equal(got.length, payloads.length);
  let offset = 0;
  got.forEach((e, i) => {
    assert.equal(e.error, undefined, `record ${i}`);
    assert.equal(e.index, i);
    assert.equal(e.offset, offset);
    offset += records[i].Data.length;
    assert.ok(e.value.data.equals(payloads[i]), `record ${i}`);
    assert.equal(e.value.partitionKey, '');
    assert.equal(e.value.keyArn, key);
  });

  // The same records read for another delivery stream, or as Kinesis
  // records, are not authentic.
  const wrong = await collect(readFirehoseObject(dec, 'other', records.map((r) => r.Data)));
  assert.ok(wrong.length === payloads.length && wrong.every((e) => e.error instanceof OpenError));
  await assert.rejects(dec.decrypt(name, records[1].Data), OpenError, 'a Firehose record read as Kinesis');
});

test('a bad record is skipped; bytes that cannot be split end the object', async (t) => {
  if (needMoto(t)) return;
  const enc = new Encryptor({ kms, keyId: key });
  const a = await enc.encryptFirehose('mixed', 'a');
  const k = (await enc.encrypt('mixed', 'pk', 'kinesis record')).data;
  const b = await enc.encryptFirehose('mixed', 'b');
  const dec = new Decryptor({ kms, allowedKeyArns: [key] });
  const obj = Buffer.concat([a, k, b]);
  // One byte at a time: the reader works on any chunking.
  const oneByte = await collect(readFirehoseObject(dec, 'mixed', Readable.from([...obj].map((x) => Buffer.of(x)))));
  assert.deepEqual(oneByte.map((e) => (e.error ? e.error.code : e.value.data.toString())), ['a', 'KSSE_OPEN', 'b']);
  assert.equal(oneByte[2].offset, a.length + k.length);

  for (const tail of [b.subarray(0, 10), b.subarray(0, 40), Buffer.from('\n'), Buffer.from('{"plain":1}')]) {
    const got = await collect(readFirehoseObject(dec, 'mixed', [Buffer.concat([a, tail])]));
    assert.deepEqual(got.map((e) => (e.error ? e.error.code : e.value.data.toString())), ['a', 'KSSE_OPEN']);
    assert.equal(got[1].offset, a.length);
  }
  assert.deepEqual(await collect(readFirehoseObject(dec, 'mixed', [])), []);
});

test('memory follows the bytes that arrive, not a length a header claims', async () => {
  // A header that claims a 10 MiB body, then a few bytes: the reader asks
  // for more bytes as they come and reports the truncation, without
  // allocating what was claimed.
  const header = Buffer.alloc(26);
  Buffer.from([0xe5, 0x4b, 0x53, 0x01]).copy(header);
  header.writeUInt16BE(184, 4);
  header.writeUInt32BE(2 + 1024 + 12 + 10 * 1024 * 1024 + 16, 6);
  let pulled = 0;
  let peak = 0;
  const before = process.memoryUsage().arrayBuffers;
  async function* source() {
    yield header;
    for (let i = 0; i < 4; i++) {
      // Measured each time the reader asks for more.
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
      pulled++;
      yield Buffer.alloc(1000);
    }
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
  }
  const dec = new Decryptor({ kms: { send: async () => assert.fail('no KMS call') }, insecureAllowAnyKey: true });
  const got = [];
  for await (const e of readFirehoseObject(dec, 'x', source())) got.push(e);
  assert.equal(pulled, 4);
  assert.equal(got.length, 1);
  assert.ok(got[0].error instanceof OpenError);
  assert.ok(peak < 5 * 1024 * 1024, `${peak} bytes`);
});
