/**
 * Test helpers: a moto server (its own, on a free port, unless
 * KSSE_MOTO_ENDPOINT is set) and AWS SDK clients for it.
 */

import { spawn } from 'node:child_process';
import net from 'node:net';
import { KMSClient, CreateKeyCommand } from '@aws-sdk/client-kms';
import { KinesisClient, CreateStreamCommand, DescribeStreamCommand, GetShardIteratorCommand, GetRecordsCommand } from '@aws-sdk/client-kinesis';

export const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test-secret-access-key' };

/** @returns {Promise<number>} a free loopback port */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts moto, or uses KSSE_MOTO_ENDPOINT. Returns null if moto cannot
 * start and CI is not "true" (callers skip); throws under CI=true.
 * @returns {Promise<{endpoint: string, stop: () => void} | null>}
 */
export async function startMoto() {
  const env = process.env.KSSE_MOTO_ENDPOINT;
  if (env) return { endpoint: env, stop() {} };
  let child;
  let endpoint;
  let failure;
  try {
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
      detached: true,
      stdio: 'ignore',
    });
    child.on('error', (e) => { failure = e; });
    const exited = new Promise((r) => child.once('exit', r));
    const deadline = Date.now() + 20000;
    for (;;) {
      if (failure) throw failure;
      if (child.exitCode !== null) throw new Error(`moto exited with status ${child.exitCode}`);
      try {
        const r = await fetch(`${endpoint}/moto-api/`);
        await r.arrayBuffer();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('moto did not answer within 20 s');
        await Promise.race([new Promise((r) => setTimeout(r, 100)), exited]);
      }
    }
  } catch (err) {
    kill(child);
    if (process.env.CI === 'true') throw new Error(`moto could not start (CI=true: failing, not skipping): ${err.message}`);
    return null;
  }
  const onExit = () => kill(child);
  process.once('exit', onExit);
  return {
    endpoint,
    stop() {
      process.removeListener('exit', onExit);
      kill(child);
    },
  };
}

/** Kills the process group of child. */
function kill(child) {
  if (child?.pid !== undefined && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * SDK client configuration for moto, with retries kept on. The Kinesis
 * client speaks HTTP/2 by default, which moto does not; every client gets
 * an HTTP/1.1 handler (the class the KMS client uses, so that no other
 * package is needed).
 */
export function clientConfig(endpoint) {
  const Http1Handler = new KMSClient({ region: REGION }).config.requestHandler.constructor;
  return { endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 5, requestHandler: new Http1Handler() };
}

/** Environment for the Go CLI talking to moto. */
export function cliEnv(endpoint) {
  return {
    ...process.env,
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: REGION,
    AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/**
 * Creates a KMS key and returns its ARN.
 * @param {KMSClient} kms
 */
export async function createKey(kms) {
  const out = await kms.send(new CreateKeyCommand({ Description: 'ksse node test' }));
  return out.KeyMetadata.Arn;
}

/**
 * Creates a stream and waits until it is active; returns its ARN.
 * @param {KinesisClient} kinesis
 * @param {string} name
 * @param {number} [shards]
 */
export async function createStream(kinesis, name, shards = 1) {
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  for (;;) {
    const d = await kinesis.send(new DescribeStreamCommand({ StreamName: name }));
    if (d.StreamDescription.StreamStatus === 'ACTIVE') return d.StreamDescription.StreamARN;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Reads every record of every shard of a stream from the trim horizon.
 * @param {KinesisClient} kinesis
 * @param {string} name
 * @returns {Promise<{shardId: string, records: any[]}[]>}
 */
export async function readAll(kinesis, name) {
  const d = await kinesis.send(new DescribeStreamCommand({ StreamName: name }));
  const out = [];
  for (const sh of d.StreamDescription.Shards) {
    let it = (await kinesis.send(new GetShardIteratorCommand({ StreamName: name, ShardId: sh.ShardId, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
    const records = [];
    for (;;) {
      const r = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10000 }));
      records.push(...r.Records);
      if (r.Records.length === 0 || !r.NextShardIterator) break;
      it = r.NextShardIterator;
    }
    out.push({ shardId: sh.ShardId, records });
  }
  return out;
}

export { KMSClient, KinesisClient };

/**
 * Returns name with a random suffix, so that test runs sharing one moto
 * (KSSE_MOTO_ENDPOINT) do not collide.
 * @param {string} name
 */
export function unique(name) {
  return `${name}-${Math.random().toString(36).slice(2, 8)}`;
}
