/**
 * The consumer side: decrypt Kinesis records, one at a time or a
 * GetRecords output at a time.
 * @module ksse/decryptor
 */

import { isEnvelope, parse } from './envelope.js';
import { ConfigError, KsseError, NotEncryptedError, OpenError, RateLimitedError } from './errors.js';
import { ConsumerCache, DEFAULTS, checkAllowlist } from './keycache.js';
import { StreamMemo, firehoseStream, kinesisStream } from './stream.js';

/**
 * @typedef {object} Decrypted
 * @property {string} partitionKey the plaintext partition key ("" for plaintext passed through)
 * @property {Buffer} data the plaintext payload
 * @property {boolean} encrypted false for a plaintext record passed through (allowPlaintext)
 * @property {string} keyArn the KMS key that protected the record's data key
 */

/**
 * @typedef {object} Result
 * @property {Decrypted} [value] the record, decrypted, if it succeeded
 * @property {KsseError} [error] why it failed, otherwise
 */

/**
 * @typedef {object} DecryptorOptions
 * @property {{send: Function}} kms a KMSClient from @aws-sdk/client-kms
 * @property {string[]} [allowedKeyArns] the KMS key ARNs whose data keys are accepted (strict mode)
 * @property {boolean} [insecureAllowAnyKey] accept data keys of any KMS key the credentials may use
 * @property {boolean} [allowPlaintext] pass records that are not envelopes through, with encrypted false
 * @property {() => number} [now] clock in ms (default Date.now), for tests
 * @property {number} [ttlMs] key lifetime from creation (default 5 minutes)
 * @property {number} [maxKeys] cached working keys, LRU (default 10,000)
 * @property {number} [negativeTtlMs] how long a permanent failure is remembered after its last lookup, at most 10 times as long after it (default 60 s)
 * @property {number} [maxNegative] remembered failures; expired ones are dropped first, then the oldest (default 10,000)
 * @property {number} [rate] KMS Decrypt calls per second on misses (default 50)
 * @property {number} [burst] token bucket size (default 256)
 * @property {number} [maxNewKeysPerBatch] new wrapped keys one batch may unwrap (default 128)
 * @property {number} [fanOut] concurrent KMS calls of one batch (default 16)
 */

/** Option names that hold positive numbers. */
const LIMITS = ['ttlMs', 'maxKeys', 'negativeTtlMs', 'maxNegative', 'rate', 'burst', 'maxNewKeysPerBatch', 'fanOut'];

/**
 * Decrypts ksse records. Create one per process and share it.
 */
export class Decryptor {
  /**
   * @param {DecryptorOptions} options
   * @throws {ConfigError} without allowedKeyArns (unless insecureAllowAnyKey), or for an entry that is not a key ARN
   */
  constructor(options) {
    const o = options ?? {};
    if (typeof o.kms?.send !== 'function') throw new ConfigError('kms: want a KMSClient');
    const allowed = checkAllowlist(o.allowedKeyArns, o.insecureAllowAnyKey);
    const limits = { ...DEFAULTS };
    for (const k of LIMITS) {
      if (o[k] !== undefined) {
        if (!(Number.isFinite(o[k]) && o[k] > 0)) throw new ConfigError(`${k} must be a positive number`);
        limits[k] = o[k];
      }
    }
    const now = o.now ?? Date.now;
    if (typeof now !== 'function') throw new ConfigError('now must be a function');
    /** The key cache; its stats count KMS calls, hits, rate limiting. */
    this.cache = new ConsumerCache(o.kms, { allowed, now, limits });
    this.allowPlaintext = o.allowPlaintext === true;
    this.limits = Object.freeze(limits);
    this.kinesis = new StreamMemo(kinesisStream);
    this.firehose = new StreamMemo(firehoseStream);
  }

  /**
   * Authenticates and decrypts the data of one Kinesis record.
   * @param {string} stream the stream name or ARN (or consumer ARN)
   * @param {Uint8Array} data the record's Data
   * @returns {Promise<Decrypted>}
   * @throws {KsseError} OpenError, NotEncryptedError, KeyNotAllowedError, KMSError, RateLimitedError or ConfigError
   */
  async decrypt(stream, data) {
    const s = this.kinesis.get(stream);
    return this.decryptFor(s, data);
  }

  /**
   * Decrypts one record of a parsed stream.
   * @param {import('./stream.js').Stream} s
   * @param {Uint8Array} data
   * @returns {Promise<Decrypted>}
   */
  async decryptFor(s, data) {
    const env = this.#envelope(data);
    if (env === null) return { partitionKey: '', data: Buffer.from(data), encrypted: false, keyArn: '' };
    const k = await this.cache.get(env.wrappedKey, s);
    return opened(k, env);
  }

  /**
   * Returns the parsed envelope of data, or null for plaintext passed
   * through.
   * @param {Uint8Array} data
   */
  #envelope(data) {
    if (!(data instanceof Uint8Array)) throw new ConfigError('data: want a Uint8Array');
    if (!isEnvelope(data)) {
      if (this.allowPlaintext) return null;
      throw new NotEncryptedError();
    }
    const { envelope, rest } = parse(data);
    if (rest.length !== 0) throw new OpenError();
    return envelope;
  }

  /**
   * Decrypts the records of a GetRecords output (or its Records array)
   * read from one stream. The distinct new wrapped keys are unwrapped
   * first, concurrently; then the records are opened in order.
   * @param {string} stream the stream name or ARN
   * @param {{Records?: {Data?: Uint8Array}[]} | {Data?: Uint8Array}[]} records
   * @returns {Promise<Result[]>} one result per record, in order
   */
  async decryptRecords(stream, records) {
    const s = this.kinesis.get(stream);
    const list = Array.isArray(records) ? records : records?.Records;
    if (!Array.isArray(list)) throw new ConfigError('records: want a GetRecords output or an array of records');
    return this.decryptBatch(list.map((r) => ({ stream: s, data: r?.Data })));
  }

  /**
   * Decrypts a batch of records, each of its own stream, with the batch
   * policy: at most maxNewKeysPerBatch new wrapped keys are unwrapped,
   * fanOut at a time; records under further new keys fail with
   * RateLimitedError.
   * @param {{stream: import('./stream.js').Stream, data: Uint8Array}[]} items
   * @returns {Promise<Result[]>}
   */
  async decryptBatch(items) {
    /** @type {(Result | {env: import('./envelope.js').Envelope, id: string, stream: import('./stream.js').Stream})[]} */
    const parsed = items.map(({ stream, data }) => {
      try {
        if (stream === undefined) throw new ConfigError('record without a valid stream');
        const env = this.#envelope(data);
        if (env === null) return { value: { partitionKey: '', data: Buffer.from(data), encrypted: false, keyArn: '' } };
        return { env, stream, id: ConsumerCache.id(env.wrappedKey, stream) };
      } catch (err) {
        return { error: asKsseError(err) };
      }
    });

    // The distinct wrapped keys that need KMS, in order of first use.
    /** @type {Map<string, {env: any, stream: any}>} */
    const fresh = new Map();
    for (const p of parsed) {
      if ('env' in p && !fresh.has(p.id) && this.cache.isNew(p.id, p.env.wrappedKey, p.stream)) {
        fresh.set(p.id, p);
      }
    }
    /** @type {Map<string, KsseError>} */
    const keyErrors = new Map();
    const todo = [];
    for (const [id, p] of fresh) {
      if (todo.length < this.limits.maxNewKeysPerBatch) todo.push([id, p]);
      else keyErrors.set(id, new RateLimitedError());
    }
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const [id, p] = todo[next++];
        try {
          await this.cache.get(p.env.wrappedKey, p.stream, id);
        } catch (err) {
          keyErrors.set(id, asKsseError(err));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.limits.fanOut, todo.length) }, worker));

    /** @type {Result[]} */
    const out = [];
    for (const p of parsed) {
      if (!('env' in p)) {
        out.push(p);
        continue;
      }
      const ke = keyErrors.get(p.id);
      if (ke !== undefined) {
        out.push({ error: ke });
        continue;
      }
      try {
        let k = this.cache.lookup(p.id);
        if (k === undefined) k = await this.cache.get(p.env.wrappedKey, p.stream, p.id);
        out.push({ value: opened(k, p.env) });
      } catch (err) {
        const e = asKsseError(err);
        if (!(e instanceof OpenError)) keyErrors.set(p.id, e);
        out.push({ error: e });
      }
    }
    return out;
  }

  /** Counters of the key cache: hits, misses, kmsCalls, coalesced, negativeHits, rateLimited, evictions. */
  get stats() {
    return { ...this.cache.stats, keys: this.cache.size, negative: this.cache.negativeSize };
  }

  /** Forgets every cached key. Decrypting fails afterwards. */
  close() {
    this.cache.close();
  }
}

/**
 * Opens env with a cached key.
 * @param {import('./keycache.js').CachedKey} k
 * @param {import('./envelope.js').Envelope} env
 * @returns {Decrypted}
 */
function opened(k, env) {
  const { partitionKey, payload } = k.key.open(env);
  return { partitionKey: partitionKey.toString('utf8'), data: payload, encrypted: true, keyArn: k.keyArn };
}

/**
 * Returns err if it is a ksse error; anything else (a bug) becomes a
 * transient KsseError, so that callers see only documented classes.
 * @param {unknown} err
 * @returns {KsseError}
 */
export function asKsseError(err) {
  if (err instanceof KsseError) return err;
  return new KsseError(`ksse: unexpected error: ${err?.name ?? 'Error'}`, 'KSSE_INTERNAL', { cause: err });
}
