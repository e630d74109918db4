// Seeded property tests: whatever the bytes, parse and open throw only
// OpenError, and open returns a record only for the exact bytes sealed.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';

import {
  ConfigError, Decryptor, Encryptor, KsseError, NotEncryptedError, OpenError, newKey, open, parse, readFirehoseObject,
} from '../src/index.js';
import { FakeKMS, prng } from '../testlib/fakekms.js';
import { loadVectors } from '../testlib/vectors.js';

const SEED = Number(process.env.KSSE_FUZZ_SEED ?? 20261203);
const ITERATIONS = Number(process.env.KSSE_FUZZ_ITERATIONS ?? 20000);

/**
 * Returns a mutation of b: bit flips, truncation, extension, a rewritten
 * length field, a spliced region. Never b itself.
 */
function mutate(r, b) {
  for (;;) {
    let m = Buffer.from(b);
    switch (r.int(7)) {
      case 0: { // flip 1 to 3 bits
        for (let k = 1 + r.int(3); k > 0; k--) {
          const i = r.int(m.length);
          m[i] ^= 1 << r.int(8);
        }
        break;
      }
      case 1: m = m.subarray(0, r.int(m.length)); break;
      case 2: m = Buffer.concat([m, r.bytes(1 + r.int(64))]); break;
      case 3: if (m.length >= 6) m.writeUInt16BE(r.int(2) ? r.int(65536) : Math.max(0, m.readUInt16BE(4) + r.int(5) - 2), 4); break;
      case 4: if (m.length >= 10) m.writeUInt32BE(r.int(2) ? r.int(2 ** 32) : Math.max(0, m.readUInt32BE(6) + r.int(5) - 2), 6); break;
      case 5: { // both lengths shifted against each other
        if (m.length >= 10) {
          const d = 1 + r.int(3);
          m.writeUInt16BE((m.readUInt16BE(4) + d) & 0xffff, 4);
          m.writeUInt32BE(Math.max(0, m.readUInt32BE(6) - d), 6);
        }
        break;
      }
      default: { // overwrite a run with random bytes
        const i = r.int(m.length);
        r.bytes(Math.min(1 + r.int(16), m.length - i)).copy(m, i);
      }
    }
    if (!m.equals(b)) return m;
  }
}

test('random bytes never parse into something that opens', () => {
  const r = prng(SEED);
  const key = newKey(r.bytes(32), r.bytes(97), 'kinesis:orders');
  for (let i = 0; i < ITERATIONS; i++) {
    const b = r.int(4) === 0 ? Buffer.concat([Buffer.from([0xe5, 0x4b, 0x53, 0x01]), r.bytes(r.int(400))]) : r.bytes(r.int(300));
    try {
      const { envelope } = parse(b);
      assert.throws(() => key.open(envelope), OpenError);
    } catch (err) {
      assert.ok(err instanceof OpenError, `${err}`);
    }
    assert.throws(() => open(key, b), OpenError);
  }
});

test('mutated envelopes never open, and fail only with OpenError', () => {
  const r = prng(SEED + 1);
  const vectors = loadVectors().filter((v) => v.expect === 'success' && v.envelope.length < 5000);
  assert.ok(vectors.length > 0);
  const keys = vectors.map((v) => newKey(v.dataKey, v.wrappedKey, v.ad));
  let parsed = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const j = r.int(vectors.length);
    const m = mutate(r, vectors[j].envelope);
    let out;
    try {
      const p = parse(m);
      parsed++;
      out = open(keys[j], m);
    } catch (err) {
      assert.ok(err instanceof OpenError, `${err}`);
      assert.equal(err.message, new OpenError().message, 'one indistinguishable error');
      continue;
    }
    assert.fail(`mutation ${i} of ${vectors[j].file} opened: ${out.payload.length} bytes returned`);
  }
  assert.ok(parsed > ITERATIONS / 10, `only ${parsed} mutations parsed: the test does not reach open`);
});

test('the decryptor and the Firehose reader throw only documented errors', async () => {
  const r = prng(SEED + 2);
  const kms = new FakeKMS(1);
  const enc = new Encryptor({ kms, keyId: kms.arns[0] });
  const dec = new Decryptor({ kms, allowedKeyArns: kms.arns });
  const good = [];
  for (let i = 0; i < 8; i++) good.push((await enc.encrypt('s', `pk-${i}`, r.bytes(r.int(300)))).data);
  const documented = (e) => e instanceof OpenError || e instanceof NotEncryptedError;
  for (let i = 0; i < 2000; i++) {
    const m = r.int(5) === 0 ? r.bytes(r.int(200)) : mutate(r, good[r.int(good.length)]);
    await assert.rejects(dec.decrypt('s', m), documented);
    const res = await dec.decryptRecords('s', [{ Data: m }, { Data: good[0] }]);
    assert.ok(documented(res[0].error) && res[0].value === undefined);
    assert.equal(res[1].value.partitionKey, 'pk-0');
  }
  // Firehose objects: good records, one mutation among them, random chunking.
  const fdec = new Decryptor({ kms, allowedKeyArns: kms.arns });
  const fenc = [];
  const fk = await (async () => {
    const { firehoseStream } = await import('../src/stream.js');
    const { ProducerCache, DEFAULTS } = await import('../src/keycache.js');
    return (await new ProducerCache(kms, kms.arns[0], { now: Date.now, limits: DEFAULTS }).get(firehoseStream('events'))).key;
  })();
  const plains = [];
  for (let i = 0; i < 6; i++) {
    plains.push(r.bytes(r.int(500)));
    fenc.push(fk.seal(Buffer.alloc(0), plains[i]));
  }
  const known = new Set(plains.map((p) => p.toString('hex')));
  for (let i = 0; i < 300; i++) {
    const recs = fenc.slice();
    const bad = r.int(recs.length);
    recs[bad] = mutate(r, recs[bad]);
    const obj = Buffer.concat(recs);
    const chunks = [];
    for (let o = 0; o < obj.length;) {
      const n = 1 + r.int(200);
      chunks.push(obj.subarray(o, o + n));
      o += n;
    }
    let ok = 0;
    let failed = 0;
    for await (const e of readFirehoseObject(fdec, 'events', Readable.from(chunks))) {
      if (e.error) {
        assert.ok(e.error instanceof OpenError, `${e.error}`);
        assert.equal(e.value, undefined);
        failed++;
      } else {
        assert.ok(known.has(e.value.data.toString('hex')), 'a record opens only to what was sealed');
        ok++;
      }
    }
    assert.ok(failed >= 1 || recs[bad].length === 0, 'the mutated record fails');
    assert.ok(ok <= recs.length);
  }
  await assert.rejects(dec.decrypt('s', 'not bytes'), ConfigError);
  assert.ok(new OpenError() instanceof KsseError);
});
