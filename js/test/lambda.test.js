// The Lambda helper against moto, with the event source mapping's
// redelivery simulated: a shard resumes at the sequence number reported.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';

import {
  Decryptor, Encryptor, KeyNotAllowedError, NotEncryptedError, OpenError, lambdaHandler,
} from '../src/index.js';
import { CountingKMS } from '../testlib/counting.js';
import { serviceError } from '../testlib/fakekms.js';
import { eventRecord, simulate } from '../testlib/lambdasim.js';
import { KMSClient, KinesisClient, clientConfig, createKey, createStream, readAll, startMoto, unique } from '../testlib/moto.js';

let moto;
let kms;
let kinesis;
let keyA;
let keyB;

before(async () => {
  moto = await startMoto();
  if (!moto) return;
  kms = new KMSClient(clientConfig(moto.endpoint));
  kinesis = new KinesisClient(clientConfig(moto.endpoint));
  keyA = await createKey(kms);
  keyB = await createKey(kms);
});

after(() => {
  kms?.destroy();
  kinesis?.destroy();
  moto?.stop();
});

function needMoto(t) {
  if (!moto) t.skip('moto is not available');
  return !moto;
}

/** Puts raw entries (already encrypted, or not) in order, one call each. */
async function putRaw(stream, data, hashKey) {
  await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: [{ Data: data, PartitionKey: 'ksse', ExplicitHashKey: hashKey }] }));
}

/** Collects what the user's handler sees. */
function collector() {
  const seen = [];
  const fn = async (event) => {
    for (const r of event.Records) {
      seen.push({ shard: r.eventID.split(':')[0], pk: r.kinesis.partitionKey, data: Buffer.from(r.kinesis.data, 'base64').toString(), type: r.kinesis.encryptionType });
    }
    return { batchItemFailures: [] };
  };
  return { seen, fn };
}

test('permanent failures are rejected, transient ones redelivered, every good record handled once in order', async (t) => {
  if (needMoto(t)) return;
  const stream = unique('lambda-policy');
  const arn = await createStream(kinesis, stream, 2);
  const encA = new Encryptor({ kms, kinesis, keyId: keyA });
  const encB = new Encryptor({ kms, kinesis, keyId: keyB });
  const want = [];
  const put = async (i) => {
    const res = await encA.putRecords(stream, [{ partitionKey: `user-${i % 5}`, data: `event ${i}` }]);
    assert.equal(res.failedRecordCount, 0);
    want.push({ pk: `user-${i % 5}`, data: `event ${i}` });
  };
  for (let i = 0; i < 10; i++) await put(i);
  // A tampered record, a plaintext one, one under a key not allowed, one for
  // another stream: all on shard of "user-0"'s hash key.
  const e = await encA.encrypt(stream, 'user-0', 'tampered');
  e.data[40] ^= 1; // in the body
  await putRaw(stream, e.data, e.explicitHashKey);
  await putRaw(stream, Buffer.from('{"plain":true}'), e.explicitHashKey);
  const nb = await encB.encrypt(stream, 'user-0', 'key B');
  await putRaw(stream, nb.data, nb.explicitHashKey);
  const other = await encA.encrypt('another-stream', 'user-0', 'elsewhere');
  await putRaw(stream, other.data, other.explicitHashKey);
  for (let i = 10; i < 20; i++) await put(i);

  const shards = await readAll(kinesis, stream);
  assert.equal(shards.reduce((n, s) => n + s.records.length, 0), 24);
  assert.ok(shards.every((s) => s.records.length > 0), 'both shards used');

  const counting = new CountingKMS(kms);
  // Key A is sent as KeyId, so KMS refuses key B's record itself.
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA] });
  const rejected = [];
  const { seen, fn } = collector();
  // The first invocation meets a KMS outage (transient).
  let outage = true;
  counting.inject = () => (outage ? serviceError('KMSInternalException') : undefined);
  const handler = lambdaHandler(dec, async (ev, ctx) => {
    outage = false;
    return fn(ev, ctx);
  }, { onReject: (r, err) => rejected.push({ seq: r.kinesis.sequenceNumber, err }) });
  const first = await handler({ Records: shards.flatMap((s) => s.records.map((r) => eventRecord(arn, s.shardId, r))) }, {});
  assert.deepEqual(first.batchItemFailures.map((f) => f.itemIdentifier).sort(), shards.map((s) => s.records[0].SequenceNumber).sort(),
    'the first record of each shard is reported; the rest withheld');
  assert.equal(seen.length, 0, 'nothing handed to the handler');
  outage = false;

  const { invocations } = await simulate(handler, arn, shards);
  assert.equal(invocations, 1);
  // Every good record exactly once, in order within its partition key.
  assert.deepEqual(seen.map((s) => `${s.pk}/${s.data}`).sort(), want.map((w) => `${w.pk}/${w.data}`).sort());
  for (let u = 0; u < 5; u++) {
    const got = seen.filter((s) => s.pk === `user-${u}`).map((s) => s.data);
    assert.deepEqual(got, want.filter((w) => w.pk === `user-${u}`).map((w) => w.data));
  }
  assert.ok(seen.every((s) => s.type === 'KMS'));
  assert.deepEqual(rejected.map((r) => r.err.constructor), [OpenError, NotEncryptedError, KeyNotAllowedError, OpenError]);
});

test('a batch over its new-key bound resumes at the first record withheld', async (t) => {
  if (needMoto(t)) return;
  const stream = unique('lambda-bound');
  const arn = await createStream(kinesis, stream, 1);
  // Three producers: three data keys, interleaved on one shard.
  const encs = [0, 1, 2].map(() => new Encryptor({ kms, kinesis, keyId: keyA }));
  for (let i = 0; i < 12; i++) await encs[i % 3].putRecords(stream, [{ partitionKey: 'p', data: `r${i}` }]);
  const shards = await readAll(kinesis, stream);
  const dec = new Decryptor({ kms, allowedKeyArns: [keyA], maxNewKeysPerBatch: 1 });
  const { seen, fn } = collector();
  const { invocations, responses } = await simulate(lambdaHandler(dec, fn), arn, shards);
  assert.equal(invocations, 3, 'one new key per invocation');
  assert.equal(responses[0].batchItemFailures[0].itemIdentifier, shards[0].records[1].SequenceNumber);
  assert.deepEqual(seen.map((s) => s.data), Array.from({ length: 12 }, (_, i) => `r${i}`));
});

test('the handler\'s own failures are merged and redelivered', async (t) => {
  if (needMoto(t)) return;
  const stream = unique('lambda-merge');
  const arn = await createStream(kinesis, stream, 1);
  const enc = new Encryptor({ kms, kinesis, keyId: keyA });
  await enc.putRecords(stream, Array.from({ length: 6 }, (_, i) => ({ partitionKey: 'p', data: `r${i}` })));
  const shards = await readAll(kinesis, stream);
  const dec = new Decryptor({ kms, allowedKeyArns: [keyA] });
  const seen = [];
  let failOnce = true;
  const handler = lambdaHandler(dec, async (ev) => {
    for (const r of ev.Records) {
      const d = Buffer.from(r.kinesis.data, 'base64').toString();
      if (d === 'r3' && failOnce) {
        failOnce = false;
        return { batchItemFailures: [{ itemIdentifier: r.kinesis.sequenceNumber }] };
      }
      seen.push(d);
    }
    return { batchItemFailures: [] };
  });
  const { invocations } = await simulate(handler, arn, shards);
  assert.equal(invocations, 2);
  assert.deepEqual(seen, ['r0', 'r1', 'r2', 'r3', 'r4', 'r5']);
});

test('the default onReject logs an ERROR line without record content', async (t) => {
  if (needMoto(t)) return;
  const stream = unique('lambda-log');
  const arn = await createStream(kinesis, stream, 1);
  const enc = new Encryptor({ kms, kinesis, keyId: keyA });
  const e = await enc.encrypt(stream, 'secret-pk', 'secret payload');
  e.data[40] ^= 0x80;
  await putRaw(stream, e.data, e.explicitHashKey);
  await enc.putRecords(stream, [{ partitionKey: 'p', data: 'after' }]);
  const shards = await readAll(kinesis, stream);
  const dec = new Decryptor({ kms, allowedKeyArns: [keyA] });
  const lines = [];
  t.mock.method(console, 'error', (s) => lines.push(s));
  const { seen, fn } = collector();
  const { responses } = await simulate(lambdaHandler(dec, fn), arn, shards);
  t.mock.restoreAll();
  assert.deepEqual(responses[0].batchItemFailures, [], 'a permanent failure is not reported');
  assert.deepEqual(seen.map((s) => s.data), ['after'], 'and not withheld');
  assert.equal(lines.length, 1);
  const log = JSON.parse(lines[0]);
  const r0 = shards[0].records[0];
  assert.equal(log.level, 'ERROR');
  assert.equal(log.eventID, `${shards[0].shardId}:${r0.SequenceNumber}`);
  assert.equal(log.sequenceNumber, r0.SequenceNumber);
  assert.equal(log.code, 'KSSE_OPEN');
  assert.ok(!lines[0].includes(Buffer.from(r0.Data).toString('base64').slice(0, 40)) && !lines[0].includes('secret'));
});
