// The consumer rules of the Go library, without a server: each allowed key
// pinned as the KeyId of Decrypt, KMS's answers for another key, refusals
// of an allowed key itself, and multi-Region keys.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecryptCommand } from '@aws-sdk/client-kms';

import { Decryptor, Encryptor, KMSError, KeyNotAllowedError, isPermanent, lambdaHandler } from '../src/index.js';
import { sameKey } from '../src/keycache.js';
import { FakeKMS, serviceError } from '../testlib/fakekms.js';

const OTHER = 'arn:aws:kms:us-east-1:111122223333:key/99999999-2222-3333-4444-555555555555';
const MRK = 'arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab';

/** An SDK-like error with a KMS message. */
function kmsError(name, message) {
  const e = new Error(message);
  e.name = name;
  e.$fault = 'client';
  return e;
}

/**
 * A FakeKMS whose Decrypt answers by KeyId: byKey maps a KeyId to an error
 * to throw, or to the KeyId to return (the call is then made without KeyId).
 */
class ScriptedKMS {
  constructor(region) {
    this.inner = new FakeKMS(1);
    this.arn = this.inner.arns[0];
    this.byKey = new Map();
    this.inputs = [];
    if (region) this.config = { region: async () => region };
  }

  async send(cmd) {
    if (cmd instanceof DecryptCommand) {
      this.inputs.push(cmd.input);
      const what = this.byKey.get(cmd.input.KeyId);
      if (what instanceof Error) throw what;
      if (typeof what === 'string') {
        const { KeyId, ...rest } = cmd.input;
        const out = await this.inner.send(new DecryptCommand(rest));
        return { ...out, KeyId: what };
      }
    }
    return this.inner.send(cmd);
  }
}

async function setup(region) {
  const kms = new ScriptedKMS(region);
  const rec = (await new Encryptor({ kms, keyId: kms.arn }).encrypt('orders', 'pk', 'x')).data;
  return { kms, rec };
}

test('KMS answers that mean "not this key: try the next"', async () => {
  for (const [name, msg] of [
    ['IncorrectKeyException', 'x'],
    ['AccessDeniedException', ''],
    ['AccessDeniedException', 'UnknownError'],
    ['AccessDeniedException', 'The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.'],
  ]) {
    const { kms, rec } = await setup();
    kms.byKey.set(OTHER, kmsError(name, msg));
    const both = new Decryptor({ kms, allowedKeyArns: [OTHER, kms.arn] });
    assert.equal((await both.decrypt('orders', rec)).keyArn, kms.arn, `${name} ${msg}`);
    assert.deepEqual(kms.inputs.map((i) => i.KeyId), [OTHER, kms.arn]);
    const only = new Decryptor({ kms, allowedKeyArns: [OTHER] });
    await assert.rejects(only.decrypt('orders', rec), (e) => e instanceof KeyNotAllowedError && isPermanent(e), `${name} ${msg}`);
  }
});

test('an AccessDenied with a real message is about the allowed key itself: transient', async () => {
  const { kms, rec } = await setup();
  kms.byKey.set(OTHER, kmsError('AccessDeniedException', 'User: arn:aws:sts::111122223333:assumed-role/c is not authorized to perform: kms:Decrypt'));
  const only = new Decryptor({ kms, allowedKeyArns: [OTHER] });
  for (let i = 0; i < 2; i++) {
    await assert.rejects(only.decrypt('orders', rec), (e) => e instanceof KMSError && !isPermanent(e) && e.allowedKey === OTHER);
  }
  assert.equal(kms.inputs.length, 2, 'not remembered');
  assert.equal(only.stats.negative, 0);
  const both = new Decryptor({ kms, allowedKeyArns: [OTHER, kms.arn] });
  assert.equal((await both.decrypt('orders', rec)).keyArn, kms.arn, 'another allowed key still decrypts its records');
  // Without KeyId (any-key mode) the same refusal is permanent.
  const { kms: k2, rec: r2 } = await setup();
  k2.byKey.set(undefined, serviceError('DisabledException'));
  const any = new Decryptor({ kms: k2, insecureAllowAnyKey: true });
  await assert.rejects(any.decrypt('orders', r2), (e) => e instanceof KMSError && isPermanent(e));
});

test('the KeyId KMS returns must be the pinned key, or a replica of it', async () => {
  const { kms, rec } = await setup();
  kms.byKey.set(kms.arn, OTHER);
  const dec = new Decryptor({ kms, allowedKeyArns: [kms.arn] });
  await assert.rejects(dec.decrypt('orders', rec), (e) => e instanceof KeyNotAllowedError && e.keyArn === OTHER);
  for (const [returned, ok] of [
    [MRK.replace('us-east-1', 'eu-west-1'), true],
    [MRK.replace('111122223333', '444455556666'), false],
    [MRK.replace(':aws:', ':aws-cn:'), false],
    [MRK.replace('mrk-1234', 'mrk-9234'), false],
  ]) {
    assert.equal(sameKey(MRK, returned), ok, returned);
    kms.byKey.set(MRK, returned);
    const d = new Decryptor({ kms, allowedKeyArns: [MRK] });
    if (ok) assert.equal((await d.decrypt('orders', rec)).keyArn, returned);
    else await assert.rejects(d.decrypt('orders', rec), KeyNotAllowedError, returned);
  }
});

test('a multi-Region key is sent once, as its full ARN in the client\'s Region', async () => {
  const { kms, rec } = await setup('eu-west-1');
  const west = MRK.replace('us-east-1', 'us-west-2').replace('111122223333', '444455556666');
  const eu = west.replace('us-west-2', 'eu-west-1');
  kms.byKey.set(eu, eu);
  const dec = new Decryptor({ kms, allowedKeyArns: [west, west.replace('us-west-2', 'ap-south-1')] });
  assert.equal((await dec.decrypt('orders', rec)).keyArn, eu, 'the replica KMS returns matches the allowed key');
  assert.deepEqual(kms.inputs.map((i) => i.KeyId), [eu]);
  // A key that is not multi-Region is sent as given.
  kms.inputs.length = 0;
  const plain = new Decryptor({ kms, allowedKeyArns: [kms.arn] });
  await plain.decrypt('orders', rec);
  assert.deepEqual(kms.inputs.map((i) => i.KeyId), [kms.arn]);
});

test('Lambda withholds, not rejects, the records of a refused allowed key', async () => {
  const { kms, rec } = await setup();
  kms.byKey.set(kms.arn, kmsError('DisabledException', `${kms.arn} is disabled.`));
  const dec = new Decryptor({ kms, allowedKeyArns: [kms.arn] });
  const streamArn = 'arn:aws:kinesis:us-east-1:111122223333:stream/orders';
  const event = {
    Records: [0, 1].map((i) => ({
      eventSourceARN: streamArn,
      eventID: `shardId-000000000000:${i}`,
      kinesis: { data: Buffer.from(rec).toString('base64'), sequenceNumber: String(i), partitionKey: 'ksse' },
    })),
  };
  const rejected = [];
  const seen = [];
  const handler = lambdaHandler(dec, async (ev) => {
    seen.push(...ev.Records);
    return { batchItemFailures: [] };
  }, { onReject: (r, err) => rejected.push(err) });
  const first = await handler(event, {});
  assert.deepEqual(first.batchItemFailures, [{ itemIdentifier: '0' }]);
  assert.deepEqual([seen.length, rejected.length], [0, 0]);
  kms.byKey.clear(); // the operator enables the key
  const second = await handler(event, {});
  assert.deepEqual(second.batchItemFailures, []);
  assert.deepEqual([seen.length, rejected.length], [2, 0]);
});
