// examples/node-lambda run against moto, in its own process, with an event
// built from real records.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';

import { Encryptor } from '../src/index.js';
import { eventRecord } from '../testlib/lambdasim.js';
import { KMSClient, KinesisClient, cliEnv, clientConfig, createKey, createStream, readAll, startMoto, unique } from '../testlib/moto.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLE = path.resolve(HERE, '../../examples/node-lambda/index.mjs');

let moto;
let kms;
let kinesis;

before(async () => {
  moto = await startMoto();
  if (!moto) return;
  kms = new KMSClient(clientConfig(moto.endpoint));
  kinesis = new KinesisClient(clientConfig(moto.endpoint));
});

after(() => {
  kms?.destroy();
  kinesis?.destroy();
  moto?.stop();
});

/** Runs the example on event; returns its response and output lines. */
function runExample(event, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      '--no-warnings',
      '--import', path.resolve(HERE, '../testlib/example-register.mjs'),
      path.resolve(HERE, '../testlib/example-driver.mjs'), EXAMPLE,
    ], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out).toString().trim().split('\n');
      const stderr = Buffer.concat(err).toString();
      const last = stdout.at(-1) ?? '';
      if (code !== 0 || !last.startsWith('RESULT ')) return reject(new Error(`example exited ${code}: ${stderr}`));
      resolve({ response: JSON.parse(last.slice(7)), stdout: stdout.slice(0, -1), stderr });
    });
    child.stdin.end(JSON.stringify(event));
  });
}

test('the Lambda example decrypts real records and sets a tampered one aside', async (t) => {
  if (!moto) return t.skip('moto is not available');
  const key = await createKey(kms);
  const stream = unique('orders');
  const arn = await createStream(kinesis, stream, 1);
  const enc = new Encryptor({ kms, kinesis, keyId: key });
  await enc.putRecords(stream, [
    { partitionKey: 'customer-1', data: JSON.stringify({ id: 101 }) },
    { partitionKey: 'customer-2', data: JSON.stringify({ id: 102 }) },
  ]);
  const bad = await enc.encrypt(stream, 'customer-3', JSON.stringify({ id: 103 }));
  bad.data[35] ^= 4;
  await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: [{ Data: bad.data, PartitionKey: 'ksse', ExplicitHashKey: bad.explicitHashKey }] }));
  await enc.putRecords(stream, [{ partitionKey: 'customer-4', data: JSON.stringify({ id: 104 }) }]);
  const [{ shardId, records }] = await readAll(kinesis, stream);
  const event = { Records: records.map((r) => eventRecord(arn, shardId, r)) };

  const { response, stdout, stderr } = await runExample(event, { ...cliEnv(moto.endpoint), KSSE_KEY_ARNS: key });
  assert.deepEqual(response, { batchItemFailures: [] });
  assert.deepEqual(stdout.map((l) => JSON.parse(l)), [
    { customer: 'customer-1', order: 101 },
    { customer: 'customer-2', order: 102 },
    { customer: 'customer-4', order: 104 },
  ]);
  const rejected = stderr.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0].level, 'ERROR');
  assert.equal(rejected[0].code, 'KSSE_OPEN');
  assert.equal(rejected[0].sequenceNumber, records[2].SequenceNumber);

  // Without KMS (an outage: transient), every record is withheld from the
  // first one on, for Lambda to deliver again.
  const down = await runExample(event, { ...cliEnv('http://127.0.0.1:9'), KSSE_KEY_ARNS: key, AWS_MAX_ATTEMPTS: '1' });
  assert.deepEqual(down.response, { batchItemFailures: [{ itemIdentifier: records[0].SequenceNumber }] });
  assert.deepEqual(down.stdout, []);
});
