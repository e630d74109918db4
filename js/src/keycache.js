/**
 * Caches of data keys: the consumer's (KMS Decrypt, with the policy of
 * CONSUMER-POLICY.md and the consumer rules of the Go library) and the
 * producer's (KMS GenerateDataKey).
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

/** Lookups extend a remembered refusal up to this many negative TTLs after it. */
export const MAX_NEGATIVE_LIFETIMES = 10;

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

/** KMS errors of a Decrypt naming a KeyId that are about that key itself. */
const ABOUT_KEY = new Set([
  'AccessDeniedException', 'AccessDenied', 'KMSAccessDeniedException', 'UnauthorizedOperation',
  'DisabledException', 'KMSDisabledException',
  'KMSInvalidStateException',
  'NotFoundException', 'KMSNotFoundException',
]);

const ACCESS_DENIED = new Set(['AccessDeniedException', 'AccessDenied', 'KMSAccessDeniedException', 'UnauthorizedOperation']);

/**
 * Turns an error of a KMS call into a ksse error.
 * @param {string} op the KMS operation
 * @param {any} err the SDK error
 * @param {string} [allowedKey] the allowed key ARN sent as the KeyId of Decrypt, if any
 * @returns {KsseError}
 */
export function classifyKMSError(op, err, allowedKey) {
  if (err instanceof KsseError) return err;
  const name = typeof err?.name === 'string' && err.name !== '' ? err.name : 'Error';
  if (op === 'Decrypt') {
    if (name === 'IncorrectKeyException' || name === 'InvalidCiphertextException') return new OpenError();
    if (typeof allowedKey === 'string' && allowedKey !== '' && ABOUT_KEY.has(name)) {
      // With a KeyId, KMS checks that key first: a disabled, missing or
      // denied key is the consumer's own problem, which no writer can
      // cause, and which passes once it is fixed.
      return new KMSError(op, name, false, err, allowedKey);
    }
  }
  return new KMSError(op, name, PERMANENT_KMS.has(name), err);
}

/**
 * Reports whether err, the answer to a Decrypt naming a KeyId, says that
 * the wrapped key is of another key: IncorrectKeyException, or an
 * AccessDenied about the ciphertext or without a message (moto's answer;
 * the SDK reads a missing message as "UnknownError"). An AccessDenied of a
 * key policy or IAM names the caller and the key.
 * @param {any} err
 */
export function ofOtherKey(err) {
  const name = err?.name;
  if (name === 'IncorrectKeyException') return true;
  if (!ACCESS_DENIED.has(name)) return false;
  const msg = typeof err.message === 'string' ? err.message : '';
  return msg === '' || msg === 'UnknownError' || msg.includes('ciphertext refers to');
}

/**
 * Splits the ARN of a multi-Region key into "partition:account" and its key
 * ID, or returns undefined.
 * @param {unknown} arn
 */
function mrkParts(arn) {
  if (typeof arn !== 'string') return undefined;
  const f = arn.split(':');
  if (f.length < 6 || f[0] !== 'arn' || f[2] !== 'kms') return undefined;
  const resource = f.slice(5).join(':');
  if (!resource.startsWith('key/mrk-')) return undefined;
  return { where: `${f[1]}:${f[4]}`, keyId: resource.slice(4) };
}

/**
 * Reports whether the key ARNs a and b name the same KMS key: they are
 * equal, or both name one multi-Region key ("key/mrk-…") in one partition
 * and account, in any two Regions. Replicas share key material, and KMS
 * names the replica of its own Region.
 * @param {unknown} a
 * @param {unknown} b
 */
export function sameKey(a, b) {
  if (typeof a === 'string' && a === b) return true;
  const pa = mrkParts(a);
  const pb = mrkParts(b);
  return pa !== undefined && pb !== undefined && pa.where === pb.where && pa.keyId === pb.keyId;
}

/**
 * The Region of a KMSClient (await client.config.region()), or "".
 * @param {any} kms
 */
async function clientRegion(kms) {
  try {
    const r = kms?.config?.region;
    const region = typeof r === 'function' ? await r() : r;
    return typeof region === 'string' ? region : '';
  } catch {
    return '';
  }
}

/**
 * A copy of a permanent error to remember: its class, code and a short
 * message, without the SDK error (which holds the request and response).
 * @param {KsseError} err
 * @returns {KsseError}
 */
function compact(err) {
  if (err instanceof KMSError) return new KMSError(err.op, String(err.kmsCode).slice(0, 128), err.permanent);
  if (err instanceof KeyNotAllowedError) return new KeyNotAllowedError(err.keyArn === undefined ? undefined : String(err.keyArn).slice(0, 256));
  if (err instanceof OpenError) return new OpenError();
  return err;
}

/** A Decrypt answer: the wrapped key is of another key than the KeyId. */
const OTHER_KEY = Symbol('other key');

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
  /** @type {Map<string, {error: KsseError, expires: number, deadline: number}>} in order of refusal */
  #negative = new Map();
  /** @type {Promise<string> | undefined} the client's Region */
  #region;
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
    /** The allowed keys, each sent in turn as KeyId; replicas of one key are one. */
    this.pinned = [];
    for (const a of allowed) if (!this.pinned.some((p) => sameKey(p, a))) this.pinned.push(a);
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
   * Returns the remembered refusal of (wk, ad) if any. A lookup keeps it
   * for another negative TTL, up to MAX_NEGATIVE_LIFETIMES negative TTLs
   * after KMS refused: a consumer that retries a batch of forged records
   * keeps the refusals it paid for.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @returns {KsseError | undefined}
   */
  negative(wk, s) {
    if (this.#negative.size === 0) return undefined;
    const n = this.#negative.get(negativeId(wk, s));
    if (n === undefined) return undefined;
    const now = this.now();
    if (now >= n.expires) return undefined;
    n.expires = Math.min(now + this.limits.negativeTtlMs, n.deadline);
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
   * Asks KMS for the data key and caches the outcome. Each allowed key is
   * named in turn as the KeyId of Decrypt, so that KMS refuses a wrapped
   * key of any other key itself, without using that key: no writer can
   * make the answer depend on a key it controls. Only insecureAllowAnyKey
   * calls without KeyId.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @param {string} id
   * @returns {Promise<CachedKey>}
   */
  async #unwrap(wk, s, id) {
    try {
      if (this.pinned.length === 0) return this.#cache(id, await this.#unwrapWith(wk, s, undefined));
      /** @type {KMSError | undefined} an allowed key that KMS would not use */
      let refused;
      for (const allowed of this.pinned) {
        let r;
        try {
          r = await this.#unwrapWith(wk, s, allowed);
        } catch (err) {
          if (!(err instanceof KMSError) || err.allowedKey === undefined) throw err;
          // Perhaps the record's key: transient, unless another allowed
          // key is the record's.
          refused ??= err;
          continue;
        }
        if (r !== OTHER_KEY) return this.#cache(id, r);
      }
      if (refused !== undefined) throw refused;
      throw new KeyNotAllowedError();
    } catch (err) {
      if (err instanceof KsseError && err.permanent) this.#addNegative(wk, s, err);
      throw err;
    }
  }

  /**
   * Caches a working key.
   * @param {string} id
   * @param {CachedKey} e
   */
  #cache(id, e) {
    if (this.#closed) {
      e.key.destroy();
      throw new ConfigError('decryptor closed');
    }
    this.#keys.set(id, e);
    while (this.#keys.size > this.limits.maxKeys) {
      const oldest = this.#keys.keys().next().value;
      this.#keys.delete(oldest);
      this.stats.evictions++;
    }
    return e;
  }

  /**
   * The KeyId to send for an allowed key ARN: itself, or for a
   * multi-Region key its ARN in the client's Region (a full ARN, for keys
   * of other accounts).
   * @param {string} allowed
   */
  async #keyIdOf(allowed) {
    if (mrkParts(allowed) === undefined) return allowed;
    this.#region ??= clientRegion(this.kms);
    const region = await this.#region;
    const f = allowed.split(':');
    if (region === '' || f[3] === region) return allowed;
    f[3] = region;
    return f.join(':');
  }

  /**
   * One KMS Decrypt call, with allowed (if given) as its KeyId.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @param {string | undefined} allowed
   * @returns {Promise<CachedKey | typeof OTHER_KEY>}
   */
  async #unwrapWith(wk, s, allowed) {
    this.stats.kmsCalls++;
    const input = { CiphertextBlob: Buffer.from(wk), EncryptionContext: { ...s.context } };
    if (allowed !== undefined) input.KeyId = await this.#keyIdOf(allowed);
    let out;
    try {
      out = await this.kms.send(new DecryptCommand(input));
    } catch (err) {
      if (allowed !== undefined && ofOtherKey(err)) return OTHER_KEY;
      throw classifyKMSError('Decrypt', err, allowed);
    }
    const pt = out?.Plaintext;
    try {
      const arn = out?.KeyId;
      if (allowed !== undefined && !sameKey(allowed, arn)) {
        throw new KeyNotAllowedError(typeof arn === 'string' ? arn : undefined);
      }
      if (!(pt instanceof Uint8Array) || pt.length !== 32) {
        throw new KMSError('Decrypt', 'UnusableDataKey', true);
      }
      return { key: newKey(pt, wk, s.ad), keyArn: String(arn ?? ''), created: this.now() };
    } finally {
      if (pt instanceof Uint8Array) pt.fill(0);
    }
  }

  /**
   * Remembers a permanent refusal, compact. When the set is full, expired
   * refusals are dropped first, then the oldest.
   * @param {Buffer} wk
   * @param {import('./stream.js').Stream} s
   * @param {KsseError} error
   */
  #addNegative(wk, s, error) {
    const nid = negativeId(wk, s);
    const now = this.now();
    const neg = this.#negative;
    neg.delete(nid);
    for (const [k, n] of neg) {
      if (now < n.expires) break;
      neg.delete(k);
    }
    if (neg.size >= this.limits.maxNegative) {
      for (const [k, n] of neg) if (now >= n.expires) neg.delete(k);
      while (neg.size >= this.limits.maxNegative) neg.delete(neg.keys().next().value);
    }
    const ttl = this.limits.negativeTtlMs;
    neg.set(nid, { error: compact(error), expires: now + ttl, deadline: now + MAX_NEGATIVE_LIFETIMES * ttl });
  }

  /** The number of cached working keys. */
  get size() {
    return this.#keys.size;
  }

  /** The number of remembered refusals that have not expired. */
  get negativeSize() {
    const now = this.now();
    let n = 0;
    for (const e of this.#negative.values()) if (now < e.expires) n++;
    return n;
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
      throw classifyKMSError('GenerateDataKey', err);
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
