// Go and Node against the same moto: records written by the Go CLI are
// read by Node, and records written by Node are read by the Go CLI.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DescribeStreamCommand, PutRecordsCommand } from '@aws-sdk/client-kinesis';

import {
  Decryptor, Encryptor, KMSError, KeyNotAllowedError, OpenError, hashKey,
} from '../src/index.js';
import { goCLI, run } from '../testlib/gocli.js';
import { KMSClient, KinesisClient, cliEnv, clientConfig, createKey, createStream, readAll, startMoto, unique } from '../testlib/moto.js';

let moto;
let cli;
let kms;
let kinesis;
let keyA;
let keyB;
let env;

before(async () => {
  moto = await startMoto();
  if (!moto) return;
  cli = await goCLI();
  if (!cli) return;
  kms = new KMSClient(clientConfig(moto.endpoint));
  kinesis = new KinesisClient(clientConfig(moto.endpoint));
  keyA = await createKey(kms);
  keyB = await createKey(kms);
  env = cliEnv(moto.endpoint);
});

after(() => {
  kms?.destroy();
  kinesis?.destroy();
  cli?.cleanup();
  moto?.stop();
});

function needSetup(t) {
  if (!moto || !cli) t.skip(!moto ? 'moto is not available' : 'go is not available');
  return !moto || !cli;
}

/** Asserts every record sits on the shard whose hash range holds its plaintext partition key's hash key. */
async function assertRouted(stream, shards, pkOf) {
  const d = await kinesis.send(new DescribeStreamCommand({ StreamName: stream }));
  const ranges = new Map(d.StreamDescription.Shards.map((s) => [s.ShardId, s.HashKeyRange]));
  for (const s of shards) {
    const { StartingHashKey: lo, EndingHashKey: hi } = ranges.get(s.shardId);
    for (const [i, r] of s.records.entries()) {
      const h = BigInt(hashKey(pkOf(s, i, r)));
      assert.ok(h >= BigInt(lo) && h <= BigInt(hi), `routed by the plaintext partition key: ${JSON.stringify(pkOf(s, i, r))} ${h} on ${s.shardId} [${lo}, ${hi}]`);
    }
  }
}

const LINES = ['{"order":1,"total":"12.50"}', 'plain text', 'ünïcødé 🛒', '', 'x'.repeat(25 * 1024), ...Array.from({ length: 15 }, (_, i) => `line ${i + 6}`)];

test('Go writes, Node reads', async (t) => {
  if (needSetup(t)) return;
  const stream = unique('go-to-node');
  await createStream(kinesis, stream, 2);
  const put = await run(cli.bin, ['put', '--stream', stream, '--key-id', keyA], { env, input: LINES.join('\n') + '\n' });
  assert.equal(put.code, 0, put.stderr);
  const shards = await readAll(kinesis, stream);
  const dec = new Decryptor({ kms, allowedKeyArns: [keyA] });
  const got = [];
  for (const s of shards) {
    assert.ok(s.records.every((r) => r.PartitionKey === 'ksse'), 'the partition key on the wire is hidden');
    const res = await dec.decryptRecords(stream, { Records: s.records });
    for (const r of res) {
      assert.equal(r.error, undefined, `${r.error}`);
      got.push(r.value);
    }
  }
  assert.equal(got.length, LINES.length);
  // The CLI's partition key is the line number.
  const byPk = new Map(got.map((v) => [v.partitionKey, v]));
  LINES.forEach((line, i) => {
    const v = byPk.get(String(i + 1));
    assert.ok(v, `line ${i + 1}`);
    assert.equal(v.data.toString(), line);
    assert.equal(v.keyArn, keyA);
    assert.equal(v.encrypted, true);
  });
  // Routed like plaintext: by the hash key of the decrypted partition key.
  const pks = new Map();
  for (const s of shards) {
    const res = await dec.decryptRecords(stream, s.records);
    pks.set(s.shardId, res.map((r) => r.value.partitionKey));
  }
  await assertRouted(stream, shards, (s, i) => pks.get(s.shardId)[i]);
});

test('Node writes, Go reads', async (t) => {
  if (needSetup(t)) return;
  const stream = unique('node-to-go');
  const arn = await createStream(kinesis, stream, 2);
  const enc = new Encryptor({ kms, kinesis, keyId: keyA });
  const records = LINES.map((line, i) => ({ partitionKey: `user-${i}-ключ`, data: line }));
  records.push({ partitionKey: 'binary', data: Buffer.from([0xff, 0x00, 0xfe, 0x80]) });
  const res = await enc.putRecords(arn, records);
  assert.equal(res.failedRecordCount, 0);
  assert.equal(res.records.length, records.length);
  assert.equal(enc.cache.stats.kmsCalls, 1);

  const tail = await run(cli.bin, ['tail', '--stream', stream, '--key-arn', keyA, '--limit', String(records.length)], { env });
  assert.equal(tail.code, 0, tail.stderr);
  const out = tail.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(out.length, records.length);
  const got = new Map(out.map((o) => [o.partitionKey ?? '', o]));
  for (const r of records) {
    const o = got.get(r.partitionKey);
    assert.ok(o, r.partitionKey);
    assert.equal(o.encryptionType, 'KMS');
    const data = o.dataEncoding === 'base64' ? Buffer.from(o.data, 'base64') : Buffer.from(o.data);
    assert.ok(data.equals(Buffer.from(r.data)), r.partitionKey);
  }
  const shards = await readAll(kinesis, stream);
  const pkOfSeq = new Map(out.map((o) => [`${o.shardId}/${o.sequenceNumber}`, o.partitionKey ?? '']));
  await assertRouted(stream, shards, (s, i, r) => pkOfSeq.get(`${s.shardId}/${r.SequenceNumber}`));

  // Go rejects a tampered Node record, and a Node record under a key it
  // does not allow.
  const bad = unique('node-to-go-bad');
  await createStream(kinesis, bad, 1);
  const e = await enc.encrypt(bad, 'pk', 'tampered');
  e.data[30] ^= 1;
  await kinesis.send(new PutRecordsCommand({ StreamName: bad, Records: [{ Data: e.data, PartitionKey: 'ksse' }] }));
  const rejected = await run(cli.bin, ['tail', '--stream', bad, '--key-arn', keyA, '--limit', '1'], { env });
  assert.equal(rejected.code, 1, 'Go rejects a tampered record');
  assert.equal(rejected.stdout, '');
  const other = await run(cli.bin, ['tail', '--stream', stream, '--key-arn', keyB, '--limit', '1'], { env });
  assert.equal(other.code, 1, 'Go rejects a key it does not allow');
  assert.equal(other.stdout, '');
});

test('Node rejects what it must, each with its error class', async (t) => {
  if (needSetup(t)) return;
  const stream = unique('rejects');
  const otherStream = unique('rejects-other');
  await createStream(kinesis, stream, 1);
  await createStream(kinesis, otherStream, 1);
  const putA = await run(cli.bin, ['put', '--stream', stream, '--key-id', keyA, '--partition-key', 'p'], { env, input: 'good\ntampered\n' });
  assert.equal(putA.code, 0, putA.stderr);
  const putB = await run(cli.bin, ['put', '--stream', stream, '--key-id', keyB, '--partition-key', 'p'], { env, input: 'under key B\n' });
  assert.equal(putB.code, 0, putB.stderr);
  const [{ records }] = await readAll(kinesis, stream);
  assert.equal(records.length, 3);
  const tampered = Buffer.from(records[1].Data);
  tampered[tampered.length - 100] ^= 0x10;
  const enc = new Encryptor({ kms, keyId: keyA });
  const firehoseRecord = await enc.encryptFirehose(stream, 'firehose record');

  const dec = new Decryptor({ kms, allowedKeyArns: [keyA] });
  assert.equal((await dec.decrypt(stream, records[0].Data)).data.toString(), 'good');
  await assert.rejects(dec.decrypt(stream, tampered), OpenError, 'tampered');
  await assert.rejects(dec.decrypt(otherStream, records[0].Data), OpenError, 'another stream');
  await assert.rejects(dec.decrypt(stream, firehoseRecord), OpenError, 'a Firehose record read as Kinesis');
  // Key A is sent as KeyId: KMS refuses key B's wrapped key itself (moto
  // with a message-less AccessDeniedException, KMS with IncorrectKeyException).
  await assert.rejects(dec.decrypt(stream, records[2].Data), (e) => e instanceof KeyNotAllowedError && e.permanent, 'key not allowed');
  // An allowed key that does not exist is the operator's problem: transient.
  const missing = keyA.replace(/key\/.*/, 'key/00000000-0000-0000-0000-000000000000');
  const withMissing = new Decryptor({ kms, allowedKeyArns: [keyA, missing] });
  await assert.rejects(withMissing.decrypt(stream, records[2].Data), (e) => e instanceof KMSError && !e.permanent && e.allowedKey === missing);
});
