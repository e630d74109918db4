import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { OpenError, newKey, open, parse } from '../src/index.js';
import { TESTDATA, loadVectors } from '../testlib/vectors.js';

/** SHA-256 of v1-pinned.txt, as fixed in envelope/vectors_test.go. */
const PINNED_SHA256 = '7fe2f8bd26e5059ad649e30275a6d1b68969793d40cc3c9eeb6314d7ac1a59e9';

const vectors = loadVectors();

test('vector files are found', () => {
  assert.ok(vectors.length > 0, `no vectors under ${TESTDATA}`);
  const stages = {};
  let success = 0;
  for (const v of vectors) {
    if (v.expect === 'success') success++;
    else stages[v.stage] = (stages[v.stage] ?? 0) + 1;
  }
  assert.ok(success > 0, 'no success vector');
  assert.ok(stages.parse > 0 && stages.trailing > 0 && stages.open > 0, `stages ${JSON.stringify(stages)}`);
});

test('pinned vector is unchanged', () => {
  const b = fs.readFileSync(path.join(TESTDATA, 'v1-pinned.txt'));
  assert.equal(crypto.createHash('sha256').update(b).digest('hex'), PINNED_SHA256);
  assert.equal(vectors[0].expect, 'success');
});

for (const v of vectors) {
  test(`vector ${path.basename(v.file, '.txt')}`, () => {
    const key = newKey(v.dataKey, v.wrappedKey, v.ad);
    if (v.stage === 'parse') {
      assert.throws(() => parse(v.envelope), OpenError);
      assert.throws(() => open(key, v.envelope), OpenError);
      return;
    }
    const { envelope, rest } = parse(v.envelope);
    assert.deepEqual(envelope.bytes, v.envelope.subarray(0, v.envelope.length - rest.length), 'parse keeps the bytes');
    if (v.stage === 'trailing') {
      assert.ok(rest.length > 0, 'bytes must follow the envelope');
      assert.throws(() => open(key, v.envelope), OpenError);
      return;
    }
    assert.equal(rest.length, 0);
    if (v.stage === 'open') {
      assert.throws(() => key.open(envelope), OpenError);
      assert.throws(() => open(key, v.envelope), OpenError);
      return;
    }
    const out = open(key, v.envelope);
    assert.equal(out.partitionKey.toString('hex'), v.partitionKey.toString('hex'), 'partition key');
    if (v.payload) {
      assert.ok(out.payload.equals(v.payload), 'payload');
    } else {
      assert.equal(out.payload.length, v.payloadSize);
      assert.equal(crypto.createHash('sha256').update(out.payload).digest('hex'), v.payloadSha256.toString('hex'));
    }
    assert.equal(key.sealedSize(out.partitionKey.length, out.payload.length), v.envelope.length, 'sealedSize');
    // Re-sealing with the same key opens to the same record.
    const again = open(key, key.seal(out.partitionKey, out.payload));
    assert.ok(again.partitionKey.equals(out.partitionKey) && again.payload.equals(out.payload));
  });
}
