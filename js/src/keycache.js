/**
 * Caches of data keys: the consumer's (KMS Decrypt, with the policy of
 * CONSUMER-POLICY.md) and the producer's (KMS GenerateDataKey).
 * @module ksse/keycache
 */

import crypto from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { newKey } from './envelope.js';
import { ConfigError, KMSError, KeyNotAllowedError, KsseError, OpenError, RateLimitedError } from './errors.js';

/** Default consumer and producer cache settings (CONSUMER-POLICY.md). */
export const DEFAULTS = Object.freeze({
  ttlMs: 5 * 60 * 1000,
  maxKeys: 10000,
  negativeTtlMs: 60 * 1000,
  maxNegative: 10000,
  rate: 50,
  burst: 256,
  maxNewKeysPerBatch: 128,
  fanOut: 16,
  maxRecordsPerKey: 2 ** 32,
});

/** A KMS key ARN, as KMS reports it in DecryptOutput.KeyId. */
const KEY_ARN = /^arn:[a-z0-9-]+:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

/** KMS errors after which the data key will never be usable. */
const PERMANENT_KMS = new Set([
  'AccessDeniedException', 'AccessDenied', 'KMSAccessDeniedException', 'UnauthorizedOperation',
  'DisabledException', 'KMSDisabledException',
  'KMSInvalidStateException',
  'NotFoundException', 'KMSNotFoundException',
  'InvalidKeyUsageException',
]);

/**
 * Turns an error of a KMS call into a ksse error.
 * @param {string} op the KMS operation
 * @param {any} err the SDK error
 * @param {boolean} strictSingle whether Decrypt was sent with the one allowed KeyId
 * @returns {KsseError}
 */
export function classifyKMSError(op, err, strictSingle) {
  if (err instanceof KsseError) return err;
  const name = typeof err?.name === 'string' && err.name !== '' ? err.name : 'Error';
  if (op === 'Decrypt') {
    if (name === 'IncorrectKeyException') return strictSingle ? new KeyNotAllowedError() : new OpenError();
    if (name === 'InvalidCiphertextException') return new OpenError();
  }
  return new KMSError(op, name, PERMANENT_KMS.has(name), err);
}

/**
 * Checks an allowlist of KMS key ARNs.
 * @param {unknown} list
 * @param {boolean} insecureAllowAnyKey
 * @returns {string[]} the list, or [] when any key is allowed
 */
export function checkAllowlist(list, insecureAllowAnyKey) {
  const arns = list ?? [];
  if (!Array.isArray(arns)) throw new ConfigError('allowedKeyArns must be an array of KMS key ARNs');
  if (insecureAllowAnyKey === true) {
    if (arns.length > 0) throw new ConfigError('give allowedKeyArns or insecureAllowAnyKey: true, not both');
    return [];
  }
  if (arns.length === 0) {
    throw new ConfigError('no allowedKeyArns: give the KMS key ARNs to accept, or opt out with insecureAllowAnyKey: true');
  }
  for (const a of arns) {
    if (typeof a !== 'string' || !KEY_ARN.test(a)) {
      throw new ConfigError(`allowedKeyArns: ${JSON.stringify(a)} is not a key ARN; give the key ARN (arn:aws:kms:REGION:ACCOUNT:key/KEY-ID), not a key ID or an alias`);
    }
  }
  return [...arns];
}

/**
 * @typedef {object} CachedKey
 * @property {import('./envelope.js').EnvelopeKey} key
 * @property {string} keyArn the KMS key that protected the data key
 * @property {number} created clock time of creation, in ms
 */

/**
 * A token bucket.
 */
class TokenBucket {
  /**
   * @param {number} rate tokens per second
   * @param {number} burst capacity
   * @param {() => number} now clock in ms
   */
  constructor(rate, burst, now) {
    this.rate = rate;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.last = now();
  }

  /** Takes one token if there is one. */
  take() {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.rate) / 1000);
    }
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * The consumer's cache of unwrapped data keys, keyed by (wrapped key, ad).
 */
export class ConsumerCache {
  /** @type {Map<string, CachedKey>} LRU: the oldest first */
  #keys = new Map();
  /** @type {Map<string, Promise<CachedKey>>} */
  #inflight = new Map();
  /** @type {Map<string, {error: KsseError, expires: number}>} FIFO */
  #negative = new Map();
  #closed = false;

  /**
   * @param {{send: Function}} kms a KMSClient (or anything with its send)
   * @param {object} opts
   * @param {string[]} opts.allowed allowed key ARNs; [] allows any
   * @param {() => number} opts.now clock in ms
   * @param {typeof DEFAULTS} opts.limits
   */
  constructor(kms, { allowed, now, limits }) {
    this.kms = kms;
    this.allowed = new Set(allowed);
    this.singleKey = allowed.length === 1 ? allowed[0] : undefined;
    this.now = now;
    this.limits = limits;
    this.bucket = new TokenBucket(limits.rate, limits.burst, now);
    /** Counters, for tests and monitoring. */
    this.stats = { hits: 0, misses: 0, kmsCalls: 0, coalesced: 0, negativeHits: 0, rateLimited: 0, evictions: 0 };
  }

  /**
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   */
  static id(wk, s) {
    return s.ad + '\u0000' + wk.toString('latin1');
  }

  /**
   * Returns the cached key of id if fresh, marking it recently used.
   * @param {string} id
   * @returns {CachedKey | undefined}
   */
  lookup(id) {
    const e = this.#keys.get(id);
    if (e === undefined) return undefined;
    if (this.now() - e.created >= this.limits.ttlMs) {
      this.#keys.delete(id);
      return undefined;
    }
    this.#keys.delete(id);
    this.#keys.set(id, e);
    return e;
  }

  /**
   * Returns the negative-cached error of (wk, ad) if any.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @returns {KsseError | undefined}
   */
  negative(wk, s) {
    if (this.#negative.size === 0) return undefined;
    const n = this.#negative.get(negativeId(wk, s));
    if (n === undefined) return undefined;
    if (this.now() >= n.expires) return undefined;
    return n.error;
  }

  /**
   * Reports whether (wk, s) would need a KMS call: not cached, not
   * negative-cached, not in flight.
   * @param {string} id
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   */
  isNew(id, wk, s) {
    return this.lookup(id) === undefined && !this.#inflight.has(id) && this.negative(wk, s) === undefined;
  }

  /**
   * Returns the key of the wrapped key wk for stream s, from the cache or
   * from KMS.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @param {string} [id] ConsumerCache.id(wk, s), if known
   * @returns {Promise<CachedKey>}
   */
  async get(wk, s, id = ConsumerCache.id(wk, s)) {
    if (this.#closed) throw new ConfigError('decryptor closed');
    const hit = this.lookup(id);
    if (hit !== undefined) {
      this.stats.hits++;
      return hit;
    }
    const neg = this.negative(wk, s);
    if (neg !== undefined) {
      this.stats.negativeHits++;
      throw neg;
    }
    const inflight = this.#inflight.get(id);
    if (inflight !== undefined) {
      this.stats.coalesced++;
      return inflight;
    }
    this.stats.misses++;
    if (!this.bucket.take()) {
      this.stats.rateLimited++;
      throw new RateLimitedError();
    }
    const p = this.#unwrap(wk, s, id);
    this.#inflight.set(id, p);
    try {
      return await p;
    } finally {
      this.#inflight.delete(id);
    }
  }

  /**
   * Calls KMS Decrypt and caches the outcome.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @param {string} id
   * @returns {Promise<CachedKey>}
   */
  async #unwrap(wk, s, id) {
    this.stats.kmsCalls++;
    const input = { CiphertextBlob: Buffer.from(wk), EncryptionContext: { ...s.context } };
    if (this.singleKey !== undefined) input.KeyId = this.singleKey;
    let out;
    try {
      out = await this.kms.send(new DecryptCommand(input));
    } catch (err) {
      const e = classifyKMSError('Decrypt', err, this.singleKey !== undefined);
      if (e.permanent) this.#addNegative(wk, s, e);
      throw e;
    }
    const pt = out?.Plaintext;
    try {
      const arn = out?.KeyId;
      if (this.allowed.size > 0 && !this.allowed.has(arn)) {
        throw new KeyNotAllowedError(typeof arn === 'string' ? arn : undefined);
      }
      if (!(pt instanceof Uint8Array) || pt.length !== 32) {
        throw new KMSError('Decrypt', 'UnusableDataKey', true);
      }
      if (this.#closed) throw new ConfigError('decryptor closed');
      const e = { key: newKey(pt, wk, s.ad), keyArn: String(arn ?? ''), created: this.now() };
      this.#keys.set(id, e);
      while (this.#keys.size > this.limits.maxKeys) {
        const oldest = this.#keys.keys().next().value;
        this.#keys.delete(oldest);
        this.stats.evictions++;
      }
      return e;
    } catch (err) {
      if (err instanceof KsseError && err.permanent) this.#addNegative(wk, s, err);
      throw err;
    } finally {
      if (pt instanceof Uint8Array) pt.fill(0);
    }
  }

  /**
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @param {KsseError} error
   */
  #addNegative(wk, s, error) {
    const nid = negativeId(wk, s);
    this.#negative.delete(nid);
    this.#negative.set(nid, { error, expires: this.now() + this.limits.negativeTtlMs });
    while (this.#negative.size > this.limits.maxNegative) {
      this.#negative.delete(this.#negative.keys().next().value);
    }
  }

  /** The number of cached working keys. */
  get size() {
    return this.#keys.size;
  }

  /** The number of negative-cached wrapped keys. */
  get negativeSize() {
    return this.#negative.size;
  }

  /** Forgets every key; get fails afterwards. */
  close() {
    this.#closed = true;
    for (const e of this.#keys.values()) e.key.destroy();
    this.#keys.clear();
    this.#negative.clear();
  }
}

/**
 * SHA-256 of ad || 0x00 || wrapped key, the key of the negative cache.
 * @param {Buffer} wk
 * @param {import('./stream.js').Stream} s
 */
function negativeId(wk, s) {
  return crypto.createHash('sha256').update(s.ad).update(Buffer.of(0)).update(wk).digest('base64');
}

/**
 * The producer's cache: one data key per stream, from KMS GenerateDataKey,
 * for ttlMs from its creation and at most maxRecordsPerKey records.
 */
export class ProducerCache {
  /** @type {Map<string, CachedKey & {records: number}>} */
  #keys = new Map();
  /** @type {Map<string, Promise<CachedKey & {records: number}>>} */
  #inflight = new Map();
  #closed = false;

  /**
   * @param {{send: Function}} kms
   * @param {string} keyId the KMS key: key ID, key ARN, alias name or alias ARN
   * @param {{now: () => number, limits: typeof DEFAULTS}} opts
   */
  constructor(kms, keyId, { now, limits }) {
    this.kms = kms;
    this.keyId = keyId;
    this.now = now;
    this.limits = limits;
    /** Counters. */
    this.stats = { kmsCalls: 0 };
  }

  /**
   * Returns the data key of stream s, counting one record sealed with it.
   * @param {import('./stream.js').Stream} s
   * @returns {Promise<CachedKey>}
   */
  async get(s) {
    for (;;) {
      if (this.#closed) throw new ConfigError('encryptor closed');
      const e = this.#keys.get(s.ad);
      if (e !== undefined && this.now() - e.created < this.limits.ttlMs && e.records < this.limits.maxRecordsPerKey) {
        e.records++;
        return e;
      }
      let p = this.#inflight.get(s.ad);
      if (p === undefined) {
        p = this.#generate(s);
        this.#inflight.set(s.ad, p);
        p.finally(() => this.#inflight.delete(s.ad)).catch(() => {});
      }
      await p;
    }
  }

  /**
   * @param {import('./stream.js').Stream} s
   */
  async #generate(s) {
    this.stats.kmsCalls++;
    let out;
    try {
      out = await this.kms.send(new GenerateDataKeyCommand({ KeyId: this.keyId, KeySpec: 'AES_256', EncryptionContext: { ...s.context } }));
    } catch (err) {
      throw classifyKMSError('GenerateDataKey', err, false);
    }
    const pt = out?.Plaintext;
    try {
      const wk = out?.CiphertextBlob;
      if (!(pt instanceof Uint8Array) || pt.length !== 32 || !(wk instanceof Uint8Array) || wk.length < 1 || wk.length > 6144) {
        throw new KMSError('GenerateDataKey', 'UnusableDataKey', true);
      }
      const e = { key: newKey(pt, wk, s.ad), keyArn: String(out.KeyId ?? ''), created: this.now(), records: 0 };
      if (!this.#closed) this.#keys.set(s.ad, e);
      return e;
    } finally {
      if (pt instanceof Uint8Array) pt.fill(0);
    }
  }

  /** Forgets every key; get fails afterwards. */
  close() {
    this.#closed = true;
    for (const e of this.#keys.values()) e.key.destroy();
    this.#keys.clear();
  }
}
