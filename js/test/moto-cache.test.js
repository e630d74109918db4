// The consumer key cache against moto's KMS, through a counting wrapper:
// coalescing, TTL, LRU, negative cache, token bucket, batch bound, strict
// mode, and a flood of forged wrapped keys.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, test } from 'node:test';

import { Decryptor, Encryptor, KMSError, KeyNotAllowedError, OpenError, RateLimitedError, isPermanent, newKey } from '../src/index.js';
import { CountingKMS } from '../testlib/counting.js';
import { serviceError } from '../testlib/fakekms.js';
import { KMSClient, clientConfig, createKey, startMoto } from '../testlib/moto.js';

let moto;
let kms;
let keyA;
let keyB;

before(async () => {
  moto = await startMoto();
  if (!moto) return;
  kms = new KMSClient(clientConfig(moto.endpoint));
  keyA = await createKey(kms);
  keyB = await createKey(kms);
});

after(() => {
  kms?.destroy();
  moto?.stop();
});

/** Skips t when moto is unavailable (never under CI=true: startMoto throws). */
function needMoto(t) {
  if (!moto) t.skip('moto is not available');
  return !moto;
}

/** A clock the test moves. */
function clock() {
  const c = { t: 1_000_000, now: () => c.t };
  return c;
}

/** Records for stream s under a fresh data key of keyId. */
async function records(keyId, s, n) {
  const enc = new Encryptor({ kms, keyId });
  const out = [];
  for (let i = 0; i < n; i++) out.push((await enc.encrypt(s, `pk-${i}`, `payload ${i}`)).data);
  return out;
}

/** An envelope whose wrapped key KMS never issued. */
function forged(s, i) {
  const wk = Buffer.concat([Buffer.from(`forged-${i}-`), crypto.randomBytes(160)]);
  return newKey(crypto.randomBytes(32), wk, `kinesis:${s}`).seal(Buffer.from('pk'), Buffer.from('x'));
}

test('concurrent misses share one KMS call', async (t) => {
  if (needMoto(t)) return;
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA] });
  const recs = await records(keyA, 'coalesce', 50);
  const release = counting.hold();
  const pending = recs.map((r) => dec.decrypt('coalesce', r));
  await new Promise((r) => setImmediate(r));
  release();
  const out = await Promise.all(pending);
  assert.deepEqual(out.map((d) => d.partitionKey), recs.map((_, i) => `pk-${i}`));
  assert.equal(counting.calls.Decrypt, 1);
  assert.equal(dec.stats.coalesced, 49);
  const batch = await dec.decryptRecords('coalesce', { Records: recs.map((Data) => ({ Data })) });
  assert.ok(batch.every((r) => r.value));
  assert.equal(counting.calls.Decrypt, 1, 'cached');
  assert.deepEqual(counting.inputs[0].input.EncryptionContext, { 'kinesis:stream': 'coalesce' });
  assert.equal(counting.inputs[0].input.KeyId, keyA, 'the one allowed key is sent as KeyId');
});

test('keys live 5 minutes from creation; the cache is a bounded LRU', async (t) => {
  if (needMoto(t)) return;
  const c = clock();
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: c.now, maxKeys: 2 });
  const [r1] = await records(keyA, 's1', 1);
  const [r2] = await records(keyA, 's2', 1);
  const [r3] = await records(keyA, 's3', 1);
  await dec.decrypt('s1', r1);
  c.t += 5 * 60 * 1000 - 1;
  await dec.decrypt('s1', r1);
  assert.equal(counting.calls.Decrypt, 1, 'fresh until the TTL');
  c.t += 1;
  await dec.decrypt('s1', r1);
  assert.equal(counting.calls.Decrypt, 2, 'expired at the TTL, even though used');
  await dec.decrypt('s2', r2);
  await dec.decrypt('s1', r1); // s1 most recently used
  await dec.decrypt('s3', r3); // evicts s2
  assert.equal(counting.calls.Decrypt, 4);
  assert.equal(dec.stats.keys, 2);
  assert.equal(dec.stats.evictions, 1);
  await dec.decrypt('s1', r1);
  assert.equal(counting.calls.Decrypt, 4, 's1 kept');
  await dec.decrypt('s2', r2);
  assert.equal(counting.calls.Decrypt, 5, 's2 evicted');
});

test('permanent failures are negative-cached for 60 s; transient ones are not', async (t) => {
  if (needMoto(t)) return;
  const c = clock();
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: c.now });
  const f = forged('neg', 0);
  await assert.rejects(dec.decrypt('neg', f), OpenError);
  await assert.rejects(dec.decrypt('neg', f), OpenError);
  assert.equal(counting.calls.Decrypt, 1);
  c.t += 60 * 1000;
  await assert.rejects(dec.decrypt('neg', f), OpenError);
  assert.equal(counting.calls.Decrypt, 2, 'retried after 60 s');

  // A record of the right key but read as another stream: KMS refuses the
  // context, so it is not authentic.
  const [r] = await records(keyA, 'neg', 1);
  await assert.rejects(dec.decrypt('other', r), OpenError);

  const [good] = await records(keyA, 'neg2', 1);
  counting.inject = () => serviceError('ThrottlingException');
  await assert.rejects(dec.decrypt('neg2', good), (e) => e instanceof KMSError && !e.permanent && e.kmsCode === 'ThrottlingException');
  await assert.rejects(dec.decrypt('neg2', good), KMSError);
  assert.equal(counting.calls.Decrypt, 5, 'transient failures are not cached');
  // Without KeyId (any-key mode), a KMS refusal of the key is permanent.
  const any = new Decryptor({ kms: counting, insecureAllowAnyKey: true, now: c.now });
  counting.inject = () => serviceError('DisabledException');
  await assert.rejects(any.decrypt('neg2', good), (e) => e instanceof KMSError && e.permanent && e.allowedKey === undefined);
  counting.inject = undefined;
  await assert.rejects(any.decrypt('neg2', good), (e) => e instanceof KMSError && e.permanent);
  assert.equal(counting.calls.Decrypt, 6, 'permanent KMS failure cached');
  assert.equal(counting.inputs.at(-1).input.KeyId, undefined);
  c.t += 60 * 1000;
  assert.equal((await any.decrypt('neg2', good)).partitionKey, 'pk-0');
});

test('remembered refusals: 60 s after the last lookup, at most 10 minutes; compact', async (t) => {
  if (needMoto(t)) return;
  const c = clock();
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: c.now });
  const f = forged('ext', 0);
  await assert.rejects(dec.decrypt('ext', f), OpenError);
  c.t += 59_900;
  await assert.rejects(dec.decrypt('ext', f), OpenError);
  c.t += 59_900; // 119.8 s after the refusal, 59.9 s after the last lookup
  await assert.rejects(dec.decrypt('ext', f), OpenError);
  assert.equal(counting.calls.Decrypt, 1, 'extended by lookups');
  c.t += 60_000;
  await assert.rejects(dec.decrypt('ext', f), OpenError);
  assert.equal(counting.calls.Decrypt, 2, 'expired 60 s after the last lookup');

  const g = forged('ext', 1);
  await assert.rejects(dec.decrypt('ext', g), OpenError);
  const calls = counting.calls.Decrypt;
  for (let i = 0; i < 11; i++) {
    c.t += 50_000; // lookups up to 550 s after the refusal
    await assert.rejects(dec.decrypt('ext', g), OpenError);
  }
  c.t += 49_500;
  await assert.rejects(dec.decrypt('ext', g), OpenError);
  assert.equal(counting.calls.Decrypt, calls);
  c.t += 500; // 600 s after the refusal
  await assert.rejects(dec.decrypt('ext', g), OpenError);
  assert.equal(counting.calls.Decrypt, calls + 1, 'at most 10 negative TTLs');

  // A KMS refusal is remembered without the SDK error, its request or response.
  const any = new Decryptor({ kms: counting, insecureAllowAnyKey: true, now: c.now });
  const [r] = await records(keyA, 'ext', 1);
  counting.inject = () => { const e = serviceError('DisabledException'); e.$response = { body: 'x'.repeat(100000) }; return e; };
  const first = await any.decrypt('ext', r).catch((e) => e);
  assert.ok(first instanceof KMSError && first.cause !== undefined);
  counting.inject = undefined;
  const again = await any.decrypt('ext', r).catch((e) => e);
  assert.ok(again instanceof KMSError && again.permanent && again.kmsCode === 'DisabledException');
  assert.equal(again.cause, undefined, 'compact: no SDK error kept');
  assert.ok(again.message.length < 300);
});

test('the negative set drops expired refusals before the oldest', async (t) => {
  if (needMoto(t)) return;
  const c = clock();
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: c.now, maxNegative: 10 });
  const f = Array.from({ length: 10 }, (_, i) => forged('exp', i));
  for (const x of f) await assert.rejects(dec.decrypt('exp', x), OpenError);
  c.t += 50_000;
  for (const x of f.slice(0, 2)) await assert.rejects(dec.decrypt('exp', x), OpenError); // kept to 110 s
  c.t += 20_000; // the other eight expired
  assert.equal(dec.stats.negative, 2);
  await assert.rejects(dec.decrypt('exp', forged('exp', 10)), OpenError);
  const calls = counting.calls.Decrypt;
  for (const x of f.slice(0, 2)) await assert.rejects(dec.decrypt('exp', x), OpenError);
  assert.equal(counting.calls.Decrypt, calls, 'the oldest, looked up, were kept');
  assert.equal(dec.stats.negative, 3);
});

test('KMS refusing a pinned allowed key itself is transient and not remembered', async (t) => {
  if (needMoto(t)) return;
  const [ra] = await records(keyA, 'refused', 1);
  const [rb] = await records(keyB, 'refused', 1);
  for (const name of ['AccessDeniedException', 'DisabledException', 'KMSInvalidStateException', 'NotFoundException']) {
    const counting = new CountingKMS(kms);
    const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA, keyB] });
    counting.inject = (cmd) => (cmd.input.KeyId === keyA ? serviceError(name) : undefined);
    // Key A refused: key B's records still decrypt.
    assert.equal((await dec.decrypt('refused', rb)).keyArn, keyB, name);
    assert.deepEqual(counting.inputs.map((i) => i.input.KeyId), [keyA, keyB]);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(dec.decrypt('refused', ra), (e) => e instanceof KMSError && e.kmsCode === name && !isPermanent(e) && e.allowedKey === keyA && /itself/.test(e.message));
    }
    assert.equal(counting.calls.Decrypt, 2 + 2 * 2, `${name}: not remembered`);
    assert.equal(dec.stats.negative, 0);
    counting.inject = undefined; // the operator fixes the key
    assert.equal((await dec.decrypt('refused', ra)).keyArn, keyA);
  }
});

test('token bucket: an empty bucket fails at once without a KMS call', async (t) => {
  if (needMoto(t)) return;
  const c = clock();
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: c.now, rate: 2, burst: 5 });
  for (let i = 0; i < 5; i++) await assert.rejects(dec.decrypt('tb', forged('tb', i)), OpenError);
  await assert.rejects(dec.decrypt('tb', forged('tb', 5)), RateLimitedError);
  assert.equal(counting.calls.Decrypt, 5);
  c.t += 500; // one token at 2/s
  await assert.rejects(dec.decrypt('tb', forged('tb', 6)), OpenError);
  await assert.rejects(dec.decrypt('tb', forged('tb', 7)), RateLimitedError);
  assert.equal(counting.calls.Decrypt, 6);
  assert.equal(dec.stats.rateLimited, 2);
});

test('a batch unwraps at most 128 new keys, 16 at a time', async (t) => {
  if (needMoto(t)) return;
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: () => 0 });
  const [good] = await records(keyA, 'batch', 1);
  const batch = [{ Data: good }];
  for (let i = 0; i < 200; i++) batch.push({ Data: forged('batch', i) });
  batch.push({ Data: good });
  const res = await dec.decryptRecords('batch', batch);
  assert.equal(counting.calls.Decrypt, 128);
  assert.ok(counting.maxActive > 1 && counting.maxActive <= 16, `max concurrency ${counting.maxActive}`);
  assert.equal(res[0].value.partitionKey, 'pk-0');
  assert.equal(res.at(-1).value.partitionKey, 'pk-0');
  assert.ok(res.slice(1, 128).every((r) => r.error instanceof OpenError));
  assert.ok(res.slice(128, 201).every((r) => r.error instanceof RateLimitedError));
});

test('5,000 forged wrapped keys: bounded KMS calls, the working key stays', async (t) => {
  if (needMoto(t)) return;
  const c = clock();
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: c.now });
  const good = await records(keyA, 'flood', 3);
  await dec.decrypt('flood', good[0]);
  assert.equal(counting.calls.Decrypt, 1);
  const forgedRecs = Array.from({ length: 5000 }, (_, i) => forged('flood', i));
  const counts = { OpenError: 0, RateLimitedError: 0 };
  for (let b = 0; b < 10; b++) {
    const batch = forgedRecs.slice(b * 500, (b + 1) * 500).map((Data) => ({ Data }));
    batch.splice(250, 0, { Data: good[b % 3] });
    const before = counting.calls.Decrypt;
    const res = await dec.decryptRecords('flood', batch);
    assert.ok(counting.calls.Decrypt - before <= 128, 'per-batch bound');
    assert.equal(res[250].value.partitionKey, `pk-${b % 3}`, 'the working key still serves');
    for (const r of res) if (r.error) counts[r.error.name]++;
    c.t += 1000; // 50 more tokens
  }
  // Burst 256 plus 50/s over the 9 s that passed.
  assert.ok(counting.calls.Decrypt <= 1 + 256 + 9 * 50, `${counting.calls.Decrypt} KMS calls`);
  assert.equal(counts.OpenError + counts.RateLimitedError, 5000);
  assert.equal(counts.OpenError, counting.calls.Decrypt - 1);
  assert.equal(dec.stats.evictions, 0);
  assert.equal(dec.stats.keys, 1);
  const calls = counting.calls.Decrypt;
  for (const g of good) await dec.decrypt('flood', g);
  assert.equal(counting.calls.Decrypt, calls, 'no KMS call for the working key');
  // The same forged keys again within 60 s: negative-cached, no KMS call.
  await dec.decryptRecords('flood', forgedRecs.slice(0, 100).map((Data) => ({ Data })));
  assert.equal(counting.calls.Decrypt, calls);
});

test('the negative set is bounded on its own and FIFO', async (t) => {
  if (needMoto(t)) return;
  const counting = new CountingKMS(kms);
  const dec = new Decryptor({ kms: counting, allowedKeyArns: [keyA], now: () => 0, maxNegative: 10, maxKeys: 1 });
  const [good] = await records(keyA, 'fifo', 1);
  await dec.decrypt('fifo', good);
  const f = Array.from({ length: 11 }, (_, i) => forged('fifo', i));
  for (const x of f) await assert.rejects(dec.decrypt('fifo', x), OpenError);
  assert.equal(dec.stats.negative, 10);
  assert.equal(dec.stats.keys, 1, 'the working key is not evicted by failures');
  const calls = counting.calls.Decrypt;
  await assert.rejects(dec.decrypt('fifo', f[10]), OpenError);
  assert.equal(counting.calls.Decrypt, calls, 'the newest is remembered');
  await assert.rejects(dec.decrypt('fifo', f[0]), OpenError);
  assert.equal(counting.calls.Decrypt, calls + 1, 'the oldest was dropped');
  await dec.decrypt('fifo', good);
  assert.equal(counting.calls.Decrypt, calls + 1);
});

test('strict mode against moto: each allowed key is pinned in turn', async (t) => {
  if (needMoto(t)) return;
  const [ra] = await records(keyA, 'strict', 1);
  const [rb] = await records(keyB, 'strict', 1);
  const counting = new CountingKMS(kms);
  // moto answers a KeyId that is not the ciphertext's key with a
  // message-less AccessDeniedException: "not this key, try the next".
  const onlyB = new Decryptor({ kms: counting, allowedKeyArns: [keyB, keyB] });
  await assert.rejects(onlyB.decrypt('strict', ra), (e) => e instanceof KeyNotAllowedError && e.permanent);
  assert.deepEqual(counting.inputs.map((i) => i.input.KeyId), [keyB], 'duplicates sent once');
  assert.equal((await onlyB.decrypt('strict', rb)).keyArn, keyB);
  const both = new Decryptor({ kms: counting, allowedKeyArns: [keyA, keyB] });
  counting.inputs.length = 0;
  assert.equal((await both.decrypt('strict', rb)).keyArn, keyB);
  assert.deepEqual(counting.inputs.map((i) => i.input.KeyId), [keyA, keyB], 'each allowed key in turn');
  // An allowed key that does not exist: KMS refuses the key itself, which
  // the operator must fix; transient, so the record is retried.
  const missing = keyB.replace(/key\/.*/, 'key/00000000-0000-0000-0000-000000000000');
  const withMissing = new Decryptor({ kms: counting, allowedKeyArns: [keyB, missing] });
  await assert.rejects(withMissing.decrypt('strict', ra), (e) => e instanceof KMSError && !e.permanent && e.allowedKey === missing);
  const any = new Decryptor({ kms: counting, insecureAllowAnyKey: true });
  counting.inputs.length = 0;
  assert.equal((await any.decrypt('strict', ra)).keyArn, keyA);
  assert.equal(counting.inputs[0].input.KeyId, undefined, 'any-key mode: no KeyId');
});
