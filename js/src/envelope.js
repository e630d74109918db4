/**
 * The ksse envelope format, version 1 (FORMAT.md): parse, open and seal.
 *
 * Every failure to parse, to satisfy a bound or to authenticate throws the
 * same {@link OpenError}, and nothing of the record is returned.
 * @module ksse/envelope
 */

import crypto from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigError, OpenError } from './errors.js';

/** Size of the header: magic and version, two lengths, salt. */
export const HEADER_SIZE = 26;
/** Size of the random salt of each record. */
export const SALT_SIZE = 16;
/** Size of the AES-GCM nonce. */
export const NONCE_SIZE = 12;
/** Size of the AES-GCM tag. */
export const TAG_SIZE = 16;
/** Largest partition key, in bytes. */
export const MAX_PARTITION_KEY = 1024;
/** Largest wrapped key, in bytes. */
export const MAX_WRAPPED_KEY = 6144;
/** Largest payload: 10 MiB. */
export const MAX_PAYLOAD = 10 * 1024 * 1024;
/** Smallest body: partition key length, nonce and tag. */
export const MIN_BODY = 2 + NONCE_SIZE + TAG_SIZE;
/** Largest body. */
export const MAX_BODY = 2 + MAX_PARTITION_KEY + NONCE_SIZE + MAX_PAYLOAD + TAG_SIZE;
/** Bytes an envelope adds beyond the partition key and the wrapped key. */
export const OVERHEAD = HEADER_SIZE + 2 + NONCE_SIZE + TAG_SIZE;

const MAGIC = Buffer.from([0xe5, 0x4b, 0x53, 0x01]);
const LABEL_STREAM_KEY = Buffer.from('ksse v1 stream key');
const LABEL_RECORD_KEY = Buffer.from('ksse v1 record key');
const ONE = Buffer.from([1]);
/** The first counter block of the partition key stream: FF×12 || 0. */
const PK_IV = Buffer.from('ffffffffffffffffffffffff00000000', 'hex');
const DATA_KEY_SIZE = 32;

/**
 * Returns b as a Buffer sharing its memory.
 * @param {Uint8Array} b
 * @returns {Buffer}
 */
function asBuffer(b) {
  if (Buffer.isBuffer(b)) return b;
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  throw new ConfigError('expected a Uint8Array');
}

/**
 * Reports whether data starts with the envelope magic E5 4B 53 (any
 * version). A record that does not is plaintext.
 * @param {Uint8Array} data
 * @returns {boolean}
 */
export function isEnvelope(data) {
  return data instanceof Uint8Array && data.length >= 3 && data[0] === 0xe5 && data[1] === 0x4b && data[2] === 0x53;
}

/**
 * A parsed envelope. Every field is a view of the parsed input, made when
 * first read.
 */
export class Envelope {
  #bodyLength;

  /**
   * @param {Buffer} bytes the whole envelope
   * @param {number} bodyLength
   */
  constructor(bytes, bodyLength) {
    /** The whole envelope. */
    this.bytes = bytes;
    this.#bodyLength = bodyLength;
  }

  /** The 26-byte header. */
  get header() {
    return this.bytes.subarray(0, HEADER_SIZE);
  }

  /** The salt. */
  get salt() {
    return this.bytes.subarray(HEADER_SIZE - SALT_SIZE, HEADER_SIZE);
  }

  /** The body: sealed partition key, nonce, ciphertext and tag. */
  get body() {
    return this.bytes.subarray(HEADER_SIZE, HEADER_SIZE + this.#bodyLength);
  }

  /** The wrapped key (KMS CiphertextBlob). */
  get wrappedKey() {
    return this.bytes.subarray(HEADER_SIZE + this.#bodyLength);
  }

  /** The length of the body. */
  get bodyLength() {
    return this.#bodyLength;
  }
}

/**
 * Reads the header of an envelope and returns its total size, or -1 if the
 * header is not valid. data must hold at least HEADER_SIZE bytes.
 * @param {Buffer} data
 * @returns {number}
 */
export function envelopeSize(data) {
  if (data.length < HEADER_SIZE || data[0] !== 0xe5 || data[1] !== 0x4b || data[2] !== 0x53 || data[3] !== 0x01) {
    return -1;
  }
  const wk = data.readUInt16BE(4);
  const body = data.readUInt32BE(6);
  if (wk < 1 || wk > MAX_WRAPPED_KEY || body < MIN_BODY || body > MAX_BODY) return -1;
  return HEADER_SIZE + body + wk;
}

/**
 * Parses the envelope at the start of data. It checks the magic, the
 * version and the bounds of both lengths before it looks further, and
 * copies nothing.
 * @param {Uint8Array} data
 * @returns {{envelope: Envelope, rest: Buffer}} the envelope and the bytes after it
 * @throws {OpenError} if data does not start with a whole valid envelope
 */
export function parse(data) {
  const b = asBuffer(data);
  const size = envelopeSize(b);
  if (size < 0 || b.length < size) throw new OpenError();
  const env = new Envelope(size === b.length ? b : b.subarray(0, size), b.readUInt32BE(6));
  return { envelope: env, rest: b.subarray(size) };
}

/**
 * HMAC-SHA256.
 * @param {crypto.BinaryLike | crypto.KeyObject} key
 * @param {...Uint8Array} parts
 * @returns {Buffer}
 */
function hmac(key, ...parts) {
  const h = crypto.createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Keys are printed as this, never with their material. */
const REDACTED = 'EnvelopeKey [redacted]';

/**
 * The stream key of one data key and one associated data: what a producer
 * seals with and a consumer opens with. Its material is held in a private
 * field; inspecting, serialising or printing it shows none.
 */
export class EnvelopeKey {
  /** @type {crypto.KeyObject | null} */
  #streamKey;
  /** @type {Buffer} */
  #wrappedKey;

  /**
   * Derives the stream key. Use {@link newKey}.
   * @param {crypto.KeyObject} streamKey
   * @param {Buffer} wrappedKey
   */
  constructor(streamKey, wrappedKey) {
    this.#streamKey = streamKey;
    this.#wrappedKey = wrappedKey;
  }

  /** The wrapped key that envelopes of this key carry (a copy). */
  get wrappedKey() {
    return Buffer.from(this.#wrappedKey);
  }

  /** True once {@link EnvelopeKey#destroy} was called. */
  get destroyed() {
    return this.#streamKey === null;
  }

  /** Forgets the key material. Seal and open fail afterwards. */
  destroy() {
    this.#streamKey = null;
  }

  /**
   * Derives the record key of one salt.
   * @param {Uint8Array} salt
   * @returns {Buffer}
   */
  #recordKey(salt) {
    if (this.#streamKey === null) throw new ConfigError('key destroyed');
    return hmac(this.#streamKey, LABEL_RECORD_KEY, salt, ONE);
  }

  /**
   * Returns the size of the envelope of a record.
   * @param {number} partitionKeyLength in bytes
   * @param {number} payloadLength in bytes
   * @returns {number}
   */
  sealedSize(partitionKeyLength, payloadLength) {
    return OVERHEAD + partitionKeyLength + payloadLength + this.#wrappedKey.length;
  }

  /**
   * Seals one record.
   * @param {Uint8Array} partitionKey at most 1024 bytes
   * @param {Uint8Array} payload at most 10 MiB
   * @returns {Buffer} the envelope
   * @throws {ConfigError} for a partition key or payload over its limit
   */
  seal(partitionKey, payload) {
    const pk = asBuffer(partitionKey);
    const pl = asBuffer(payload);
    if (pk.length > MAX_PARTITION_KEY) throw new ConfigError(`partition key of ${pk.length} bytes, limit ${MAX_PARTITION_KEY}`);
    if (pl.length > MAX_PAYLOAD) throw new ConfigError(`payload of ${pl.length} bytes, limit ${MAX_PAYLOAD}`);
    const salt = crypto.randomBytes(SALT_SIZE);
    let nonce;
    do {
      nonce = crypto.randomBytes(NONCE_SIZE);
    } while (isReservedNonce(nonce, 0));
    const rk = this.#recordKey(salt);

    const wk = this.#wrappedKey;
    const bodyLen = 2 + pk.length + NONCE_SIZE + pl.length + TAG_SIZE;
    const out = Buffer.allocUnsafe(HEADER_SIZE + bodyLen + wk.length);
    MAGIC.copy(out, 0);
    out.writeUInt16BE(wk.length, 4);
    out.writeUInt32BE(bodyLen, 6);
    salt.copy(out, 10);
    let o = HEADER_SIZE;
    out.writeUInt16BE(pk.length, o);
    pk.copy(out, o + 2);
    const ctr = crypto.createCipheriv('aes-256-ctr', rk, PK_IV);
    const spk = Buffer.concat([ctr.update(out.subarray(o, o + 2 + pk.length)), ctr.final()]);
    spk.copy(out, o);
    o += spk.length;
    const aad = out.subarray(0, o);
    nonce.copy(out, o);
    o += NONCE_SIZE;
    const gcm = crypto.createCipheriv('aes-256-gcm', rk, nonce, { authTagLength: TAG_SIZE });
    rk.fill(0);
    gcm.setAAD(aad);
    o += gcm.update(pl).copy(out, o);
    o += gcm.final().copy(out, o);
    o += gcm.getAuthTag().copy(out, o);
    wk.copy(out, o);
    return out;
  }

  /**
   * Authenticates and decrypts a parsed envelope.
   * @param {Envelope} env from {@link parse}
   * @returns {{partitionKey: Buffer, payload: Buffer}}
   * @throws {OpenError} if it is not authentic under this key
   */
  open(env) {
    if (!(env instanceof Envelope)) throw new OpenError();
    const b = env.bytes;
    const bodyEnd = HEADER_SIZE + env.bodyLength;
    // The envelope must carry the wrapped key this key was derived with.
    const wk = this.#wrappedKey;
    if (b.length - bodyEnd !== wk.length || wk.compare(b, bodyEnd) !== 0) throw new OpenError();
    const rk = this.#recordKey(b.subarray(HEADER_SIZE - SALT_SIZE, HEADER_SIZE));
    try {
      const ctr = crypto.createDecipheriv('aes-256-ctr', rk, PK_IV);
      const len = ctr.update(b.subarray(HEADER_SIZE, HEADER_SIZE + 2));
      const n = (len[0] << 8) | len[1];
      if (n > MAX_PARTITION_KEY || 2 + n + NONCE_SIZE + TAG_SIZE > env.bodyLength) throw new OpenError();
      const nonceAt = HEADER_SIZE + 2 + n;
      if (isReservedNonce(b, nonceAt)) throw new OpenError();
      const gcm = crypto.createDecipheriv('aes-256-gcm', rk, b.subarray(nonceAt, nonceAt + NONCE_SIZE), { authTagLength: TAG_SIZE });
      gcm.setAAD(b.subarray(0, nonceAt));
      gcm.setAuthTag(b.subarray(bodyEnd - TAG_SIZE, bodyEnd));
      const payload = gcm.update(b.subarray(nonceAt + NONCE_SIZE, bodyEnd - TAG_SIZE));
      try {
        gcm.final();
      } catch {
        payload.fill(0);
        throw new OpenError();
      }
      const partitionKey = ctr.update(b.subarray(HEADER_SIZE + 2, nonceAt));
      return { partitionKey, payload };
    } catch (err) {
      if (err instanceof OpenError) throw err;
      throw new OpenError();
    } finally {
      rk.fill(0);
    }
  }

  /** @returns {string} */
  toString() {
    return REDACTED;
  }

  /** @returns {string} */
  toJSON() {
    return REDACTED;
  }

  [inspect.custom]() {
    return REDACTED;
  }
}

/**
 * Reports whether the 12 bytes of b at i are all FF (the reserved nonce).
 * @param {Buffer} b
 * @param {number} i
 */
function isReservedNonce(b, i) {
  for (let j = i; j < i + NONCE_SIZE; j++) if (b[j] !== 0xff) return false;
  return true;
}

/**
 * Derives the key of one data key, its wrapped key and the associated data
 * (stream identity): stream key = HKDF(data key, salt = wrapped key,
 * info = "ksse v1 stream key" || ad).
 * @param {Uint8Array} dataKey 32 bytes; not kept
 * @param {Uint8Array} wrappedKey 1 to 6144 bytes; copied
 * @param {string | Uint8Array} ad the associated data
 * @returns {EnvelopeKey}
 * @throws {ConfigError} for sizes out of range
 */
export function newKey(dataKey, wrappedKey, ad) {
  const dk = asBuffer(dataKey);
  const wk = asBuffer(wrappedKey);
  if (dk.length !== DATA_KEY_SIZE) throw new ConfigError(`data key of ${dk.length} bytes, want ${DATA_KEY_SIZE}`);
  if (wk.length < 1 || wk.length > MAX_WRAPPED_KEY) throw new ConfigError(`wrapped key of ${wk.length} bytes, want 1 to ${MAX_WRAPPED_KEY}`);
  const adb = typeof ad === 'string' ? Buffer.from(ad, 'utf8') : asBuffer(ad);
  const prk = hmac(wk, dk);
  const sk = hmac(prk, LABEL_STREAM_KEY, adb, ONE);
  prk.fill(0);
  const key = new EnvelopeKey(crypto.createSecretKey(sk), Buffer.from(wk));
  sk.fill(0);
  return key;
}

/**
 * Authenticates and decrypts one envelope.
 * @param {EnvelopeKey} key
 * @param {Envelope | Uint8Array} envelope a parsed envelope, or the bytes of exactly one
 * @returns {{partitionKey: Buffer, payload: Buffer}}
 * @throws {OpenError} if it is not authentic, or bytes follow the envelope
 */
export function open(key, envelope) {
  let env = envelope;
  if (!(env instanceof Envelope)) {
    const p = parse(env);
    if (p.rest.length !== 0) throw new OpenError();
    env = p.envelope;
  }
  return key.open(env);
}

/**
 * Seals one record.
 * @param {EnvelopeKey} key
 * @param {Uint8Array} partitionKey
 * @param {Uint8Array} payload
 * @returns {Buffer} the envelope
 */
export function seal(key, partitionKey, payload) {
  return key.seal(partitionKey, payload);
}
