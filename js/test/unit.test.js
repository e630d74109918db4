import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { inspect } from 'node:util';
import { test } from 'node:test';

import {
  ConfigError, Decryptor, Encryptor, KMSError, KeyNotAllowedError, KsseError, NotEncryptedError, OpenError,
  RateLimitedError, NotSentError, firehoseStream, hashKey, isPermanent, kinesisStream, newKey, open, parse, seal,
} from '../src/index.js';
import { classifyKMSError } from '../src/keycache.js';
import { FakeKMS, serviceError } from '../testlib/fakekms.js';

test('error classes have stable codes and permanence', () => {
  const cases = [
    [new OpenError(), 'KSSE_OPEN', true],
    [new NotEncryptedError(), 'KSSE_NOT_ENCRYPTED', true],
    [new KeyNotAllowedError('arn:aws:kms:us-east-1:111122223333:key/x'), 'KSSE_KEY_NOT_ALLOWED', true],
    [new KMSError('Decrypt', 'DisabledException', true), 'KSSE_KMS', true],
    [new KMSError('Decrypt', 'ThrottlingException', false), 'KSSE_KMS', false],
    [new RateLimitedError(), 'KSSE_RATE_LIMITED', false],
    [new ConfigError('x'), 'KSSE_CONFIG', false],
    [new NotSentError([]), 'KSSE_NOT_SENT', false],
  ];
  for (const [err, code, permanent] of cases) {
    assert.ok(err instanceof KsseError && err instanceof Error);
    assert.equal(err.code, code);
    assert.equal(isPermanent(err), permanent, code);
    assert.equal(err.name, err.constructor.name);
  }
  assert.equal(isPermanent(new Error('x')), false);
  assert.equal(isPermanent(undefined), false);
});

test('KMS errors are classified by the policy', () => {
  for (const name of ['InvalidCiphertextException', 'IncorrectKeyException']) {
    assert.ok(classifyKMSError('Decrypt', serviceError(name)) instanceof OpenError, name);
  }
  const allowed = 'arn:aws:kms:us-east-1:111122223333:key/x';
  for (const name of ['AccessDeniedException', 'DisabledException', 'KMSInvalidStateException', 'NotFoundException', 'InvalidKeyUsageException']) {
    const e = classifyKMSError('Decrypt', serviceError(name));
    assert.ok(e instanceof KMSError && e.permanent, name);
    assert.equal(e.kmsCode, name);
    // With the allowed key as KeyId, a refusal of the key itself is transient.
    const k = classifyKMSError('Decrypt', serviceError(name), allowed);
    assert.equal(k.permanent, name === 'InvalidKeyUsageException', name);
    assert.equal(k.allowedKey, name === 'InvalidKeyUsageException' ? undefined : allowed);
  }
  for (const name of ['ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'TimeoutError', 'Error']) {
    const e = classifyKMSError('Decrypt', serviceError(name));
    assert.ok(e instanceof KMSError && !e.permanent, name);
  }
  const net = new Error('socket hang up');
  net.code = 'ECONNRESET';
  assert.equal(classifyKMSError('Decrypt', net).permanent, false);
});

test('streams are normalised to their name', () => {
  const want = { kind: 'kinesis', name: 'orders', ad: 'kinesis:orders', context: { 'kinesis:stream': 'orders' } };
  for (const s of [
    'orders',
    'arn:aws:kinesis:us-east-1:123456789012:stream/orders',
    'arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/app:1700000000',
  ]) {
    assert.deepEqual({ ...kinesisStream(s) }, want, s);
  }
  assert.deepEqual({ ...firehoseStream('arn:aws:firehose:us-east-1:123456789012:deliverystream/events') },
    { kind: 'firehose', name: 'events', ad: 'firehose:events', context: { 'firehose:deliverystream': 'events' } });
  for (const bad of ['', 'a b', 'x'.repeat(129), 'arn:aws:firehose:us-east-1:1:deliverystream/x', 'arn:aws:kinesis:us-east-1:1:table/x', undefined]) {
    assert.throws(() => kinesisStream(bad), ConfigError, String(bad));
  }
});

test('hash key is MD5 read as a big-endian integer, in decimal', () => {
  assert.equal(hashKey(''), BigInt('0xd41d8cd98f00b204e9800998ecf8427e').toString());
  assert.equal(hashKey('a'), '16955237001963240173058271559858726497');
  assert.equal(hashKey('🛒'), BigInt('0x' + crypto.createHash('md5').update(Buffer.from('🛒')).digest('hex')).toString());
});

test('stream key is HKDF-SHA256 as node:crypto computes it', () => {
  const dk = crypto.randomBytes(32);
  const wk = crypto.randomBytes(184);
  const ad = 'kinesis:orders';
  const sk = Buffer.from(crypto.hkdfSync('sha256', dk, wk, Buffer.concat([Buffer.from('ksse v1 stream key'), Buffer.from(ad)]), 32));
  const key = newKey(dk, wk, ad);
  const env = parse(seal(key, Buffer.from('pk'), Buffer.from('hello'))).envelope;
  const rk = crypto.createHmac('sha256', sk).update('ksse v1 record key').update(env.salt).update(Buffer.of(1)).digest();
  // Open the payload by hand with the record key.
  const body = env.body;
  const ks = crypto.createCipheriv('aes-256-ctr', rk, Buffer.from('ffffffffffffffffffffffff00000000', 'hex')).update(Buffer.alloc(4));
  assert.equal(((body[0] ^ ks[0]) << 8) | (body[1] ^ ks[1]), 2);
  assert.equal(Buffer.from([body[2] ^ ks[2], body[3] ^ ks[3]]).toString(), 'pk');
  const g = crypto.createDecipheriv('aes-256-gcm', rk, body.subarray(4, 16));
  g.setAAD(env.bytes.subarray(0, 26 + 4));
  g.setAuthTag(body.subarray(body.length - 16));
  assert.equal(Buffer.concat([g.update(body.subarray(16, body.length - 16)), g.final()]).toString(), 'hello');
});

test('seal never uses the reserved nonce, and checks its bounds', () => {
  const key = newKey(crypto.randomBytes(32), Buffer.from('w'), 'kinesis:s');
  for (let i = 0; i < 200; i++) {
    const e = parse(seal(key, Buffer.alloc(0), Buffer.alloc(0))).envelope;
    assert.notDeepEqual(e.body.subarray(2, 14), Buffer.alloc(12, 0xff));
  }
  assert.throws(() => seal(key, Buffer.alloc(1025), Buffer.alloc(0)), ConfigError);
  assert.deepEqual(open(key, seal(key, Buffer.alloc(1024, 0x61), Buffer.alloc(0))).partitionKey, Buffer.alloc(1024, 0x61));
  assert.throws(() => newKey(Buffer.alloc(31), Buffer.from('w'), 'a'), ConfigError);
  assert.throws(() => newKey(Buffer.alloc(32), Buffer.alloc(0), 'a'), ConfigError);
  assert.throws(() => newKey(Buffer.alloc(32), Buffer.alloc(6145), 'a'), ConfigError);
});

test('no key object shows key material', async () => {
  const kms = new FakeKMS(1);
  const plaintexts = [];
  const spy = {
    async send(cmd) {
      const out = await kms.send(cmd);
      if (out.Plaintext) plaintexts.push(Buffer.from(out.Plaintext));
      return out;
    },
  };
  const enc = new Encryptor({ kms: spy, keyId: kms.arns[0] });
  const dec = new Decryptor({ kms: spy, allowedKeyArns: [kms.arns[0]] });
  const e = await enc.encrypt('orders', 'pk', 'secret payload');
  const d = await dec.decrypt('orders', e.data);
  assert.equal(d.data.toString(), 'secret payload');
  assert.equal(plaintexts.length, 2);
  const dk = Buffer.from(plaintexts[0]);
  const key = newKey(crypto.randomBytes(32), Buffer.from('w'), 'a');
  const shown = [
    inspect(key), inspect(key, { showHidden: true, depth: Infinity }), JSON.stringify(key), String(key), `${key}`,
    inspect(enc, { showHidden: true, depth: Infinity }), inspect(dec, { showHidden: true, depth: Infinity }),
    JSON.stringify(dec.stats), JSON.stringify(enc.cache), JSON.stringify(dec.cache),
  ];
  for (const s of shown) assert.doesNotMatch(s, /Buffer|KeyObject \{[^}]*[0-9a-f]{16}/, s);
  assert.equal(inspect(key), 'EnvelopeKey [redacted]');
  assert.equal(JSON.stringify({ key }), '{"key":"EnvelopeKey [redacted]"}');
  // The data keys KMS returned were zeroed after use (the spy kept copies).
  for (const pt of plaintexts) {
    const hex = pt.toString('hex');
    const b64 = pt.toString('base64');
    const bytes = [...pt.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    for (const s of shown) {
      assert.ok(!s.includes(hex) && !s.includes(b64) && !s.includes(bytes), 'key material shown');
    }
  }
  assert.ok(dk.length === 32);
});

test('construction enforces the strict allowlist', () => {
  const kms = new FakeKMS(1);
  assert.throws(() => new Decryptor({ kms }), (e) => e instanceof ConfigError && /insecureAllowAnyKey/.test(e.message));
  assert.throws(() => new Decryptor({ kms, allowedKeyArns: [] }), ConfigError);
  for (const bad of ['1234abcd-12ab-34cd-56ef-1234567890ab', 'alias/x', 'arn:aws:kms:us-east-1:111122223333:alias/x', 'arn:aws:kms:us-east-1:111122223333:key/', 42]) {
    assert.throws(() => new Decryptor({ kms, allowedKeyArns: [bad] }), (e) => e instanceof ConfigError && /key ARN/.test(e.message), String(bad));
  }
  assert.throws(() => new Decryptor({ kms, allowedKeyArns: kms.arns, insecureAllowAnyKey: true }), ConfigError);
  assert.throws(() => new Decryptor({ allowedKeyArns: kms.arns }), ConfigError);
  assert.ok(new Decryptor({ kms, insecureAllowAnyKey: true }));
  assert.ok(new Decryptor({ kms, allowedKeyArns: kms.arns }));
  assert.ok(new Decryptor({ kms, allowedKeyArns: ['arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd'] }));
});

test('strict mode sends each allowed key as KeyId; other keys are not allowed', async () => {
  const kms = new FakeKMS(2);
  const [a, b] = kms.arns;
  const encA = new Encryptor({ kms, keyId: a });
  const encB = new Encryptor({ kms, keyId: b });
  const ra = (await encA.encrypt('s', 'pk', 'x')).data;
  const rb = (await encB.encrypt('s', 'pk', 'x')).data;

  const single = new Decryptor({ kms, allowedKeyArns: [a] });
  assert.equal((await single.decrypt('s', ra)).keyArn, a);
  assert.equal(kms.calls.at(-1).input.KeyId, a);
  await assert.rejects(single.decrypt('s', rb), KeyNotAllowedError); // IncorrectKeyException

  const c = `arn:aws:kms:us-east-1:111122223333:key/${crypto.randomUUID()}`;
  const other = new Decryptor({ kms, allowedKeyArns: [b, c] });
  let n = kms.calls.length;
  await assert.rejects(other.decrypt('s', ra), KeyNotAllowedError); // IncorrectKeyException for each
  assert.deepEqual(kms.calls.slice(n).map((x) => x.input.KeyId), [b, c], 'each allowed key in turn');
  n = kms.calls.length;
  await assert.rejects(other.decrypt('s', ra), KeyNotAllowedError);
  assert.equal(kms.calls.length, n, 'negative-cached');

  const any = new Decryptor({ kms, insecureAllowAnyKey: true });
  assert.equal((await any.decrypt('s', rb)).keyArn, b);
});

test('decrypt classifies records', async () => {
  const kms = new FakeKMS(1);
  const enc = new Encryptor({ kms, keyId: kms.arns[0] });
  const dec = new Decryptor({ kms, allowedKeyArns: kms.arns });
  const r = await enc.encrypt('arn:aws:kinesis:us-east-1:123456789012:stream/orders', 'customer-42', '{"a":1}');
  assert.equal(r.partitionKey, 'ksse');
  assert.equal(r.explicitHashKey, hashKey('customer-42'));
  const d = await dec.decrypt('orders', r.data);
  assert.deepEqual({ ...d, data: d.data.toString() }, { partitionKey: 'customer-42', data: '{"a":1}', encrypted: true, keyArn: kms.arns[0] });
  await assert.rejects(dec.decrypt('payments', r.data), OpenError, 'another stream');
  await assert.rejects(dec.decrypt('orders', Buffer.from('{"a":1}')), NotEncryptedError);
  await assert.rejects(dec.decrypt('orders', Buffer.concat([r.data, Buffer.of(0)])), OpenError, 'trailing byte');
  await assert.rejects(dec.decrypt('bad name', r.data), ConfigError);
  const plain = new Decryptor({ kms, allowedKeyArns: kms.arns, allowPlaintext: true });
  const p = await plain.decrypt('orders', Buffer.from('hi'));
  assert.deepEqual({ ...p, data: p.data.toString() }, { partitionKey: '', data: 'hi', encrypted: false, keyArn: '' });
  await assert.rejects(plain.decrypt('orders', Buffer.from([0xe5, 0x4b, 0x53, 0x02])), OpenError, 'magic with another version');
});

test('encrypt validates before any KMS call', async () => {
  const kms = new FakeKMS(1);
  const enc = new Encryptor({ kms, keyId: kms.arns[0], kinesis: { send: async () => assert.fail('sent') } });
  await assert.rejects(enc.encrypt('s', '', 'x'), ConfigError);
  await assert.rejects(enc.encrypt('s', 'x'.repeat(257), 'x'), ConfigError);
  await assert.rejects(enc.encrypt('s', '\ud800', 'x'), ConfigError);
  await assert.rejects(enc.encrypt('s', 'pk', Buffer.alloc(1 << 20)), ConfigError);
  assert.ok(await enc.encrypt('s', '𝄞'.repeat(256), 'x'));
  await assert.rejects(enc.putRecords('s', []), ConfigError);
  await assert.rejects(enc.putRecords('s', Array.from({ length: 501 }, () => ({ partitionKey: 'p', data: 'x' }))), ConfigError);
  await assert.rejects(enc.putRecords('s', [{ partitionKey: 'p', data: 'x' }, { partitionKey: '', data: 'x' }]),
    (e) => e instanceof NotSentError && e.failures.length === 1 && e.failures[0].index === 1 && e.failures[0].error instanceof ConfigError);
  assert.equal(kms.calls.length, 1);
});

test('putRecords sends nothing if a record fails to encrypt', async () => {
  const kms = new FakeKMS(1);
  let sent = 0;
  const failing = { send: async (cmd) => { if (cmd.constructor.name === 'GenerateDataKeyCommand') throw serviceError('DisabledException'); return kms.send(cmd); } };
  const enc = new Encryptor({ kms: failing, keyId: kms.arns[0], kinesis: { send: async () => { sent++; } } });
  await assert.rejects(enc.putRecords('s', [{ partitionKey: 'p', data: 'x' }]),
    (e) => e instanceof NotSentError && e.failures[0].error instanceof KMSError && e.failures[0].error.permanent);
  assert.equal(sent, 0);
});

test('producer caches the data key for 5 minutes', async () => {
  const kms = new FakeKMS(1);
  let t = 1e6;
  const enc = new Encryptor({ kms, keyId: kms.arns[0], now: () => t });
  await Promise.all(Array.from({ length: 20 }, () => enc.encrypt('s', 'pk', 'x')));
  assert.equal(kms.calls.length, 1, 'concurrent first calls share one GenerateDataKey');
  t += 5 * 60 * 1000 - 1;
  await enc.encrypt('s', 'pk', 'x');
  assert.equal(kms.calls.length, 1);
  t += 1;
  await enc.encrypt('s', 'pk', 'x');
  assert.equal(kms.calls.length, 2);
  await enc.encrypt('other', 'pk', 'x');
  assert.equal(kms.calls.length, 3, 'one data key per stream');
  assert.deepEqual(kms.calls[2].input, { KeyId: kms.arns[0], KeySpec: 'AES_256', EncryptionContext: { 'kinesis:stream': 'other' } });
});

test('putRecords returns Kinesis\' per-record failures by index', async () => {
  const kms = new FakeKMS(1);
  const requests = [];
  const kinesis = {
    async send(cmd) {
      requests.push(cmd.input);
      return {
        FailedRecordCount: 1,
        Records: [
          { SequenceNumber: '1', ShardId: 'shardId-000000000000' },
          { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'slow down' },
          { SequenceNumber: '3', ShardId: 'shardId-000000000001' },
        ],
      };
    },
  };
  const enc = new Encryptor({ kms, kinesis, keyId: kms.arns[0] });
  const arn = 'arn:aws:kinesis:us-east-1:123456789012:stream/orders';
  const res = await enc.putRecords(arn, [
    { partitionKey: 'a', data: 'x' },
    { partitionKey: 'b', data: Buffer.from('y') },
    { partitionKey: 'c', data: 'z', explicitHashKey: '42' },
  ]);
  assert.deepEqual(res, {
    failedRecordCount: 1,
    records: [
      { sequenceNumber: '1', shardId: 'shardId-000000000000' },
      { errorCode: 'ProvisionedThroughputExceededException', errorMessage: 'slow down' },
      { sequenceNumber: '3', shardId: 'shardId-000000000001' },
    ],
  });
  const [req] = requests;
  assert.equal(req.StreamARN, arn);
  assert.equal(req.StreamName, undefined);
  assert.deepEqual(req.Records.map((r) => [r.PartitionKey, r.ExplicitHashKey]), [['ksse', hashKey('a')], ['ksse', hashKey('b')], ['ksse', '42']]);
  const dec = new Decryptor({ kms, allowedKeyArns: kms.arns });
  const out = await dec.decryptRecords('orders', req.Records.map((r) => ({ Data: r.Data })));
  assert.deepEqual(out.map((r) => [r.value.partitionKey, r.value.data.toString()]), [['a', 'x'], ['b', 'y'], ['c', 'z']]);

  // A response without one result per record fails every record.
  kinesis.send = async () => ({ FailedRecordCount: 0, Records: [] });
  const bad = await enc.putRecords('orders', [{ partitionKey: 'a', data: 'x' }]);
  assert.equal(bad.failedRecordCount, 1);
  assert.equal(bad.records[0].errorCode, 'Unknown');
});
