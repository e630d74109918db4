/**
 * Streaming reader of S3 objects that Firehose delivered: concatenated
 * envelopes, split and decrypted one at a time.
 * @module ksse/firehose
 */

import { HEADER_SIZE, envelopeSize, parse } from './envelope.js';
import { ConfigError, OpenError } from './errors.js';
import { asKsseError } from './decryptor.js';

/**
 * @typedef {object} FirehoseRecord
 * @property {number} index the position of the record in the object, from 0
 * @property {number} offset where it starts in the object, in bytes
 * @property {import('./decryptor.js').Decrypted} [value] the record, decrypted
 * @property {import('./errors.js').KsseError} [error] why it failed
 */

/**
 * Splits chunks into byte runs. It holds only the bytes that arrived and
 * are not consumed yet: its memory grows with what the source gives, never
 * with a length that a header claims.
 */
class ChunkQueue {
  /** @param {AsyncIterator<Uint8Array | string>} it */
  constructor(it) {
    this.it = it;
    /** @type {Buffer[]} */
    this.chunks = [];
    this.size = 0;
    this.done = false;
  }

  /**
   * Waits until n bytes are buffered, or the source ends.
   * @param {number} n
   * @returns {Promise<boolean>} whether n bytes are buffered
   */
  async fill(n) {
    while (this.size < n && !this.done) {
      const { value, done } = await this.it.next();
      if (done) {
        this.done = true;
        break;
      }
      const b = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
      if (b.length > 0) {
        this.chunks.push(b);
        this.size += b.length;
      }
    }
    return this.size >= n;
  }

  /**
   * Returns the first n buffered bytes without consuming them.
   * @param {number} n at most size
   * @returns {Buffer}
   */
  peek(n) {
    if (this.chunks[0].length < n) {
      this.chunks = [Buffer.concat(this.chunks)];
    }
    return this.chunks[0].subarray(0, n);
  }

  /**
   * Removes and returns the first n buffered bytes.
   * @param {number} n at most size
   * @returns {Buffer}
   */
  take(n) {
    const out = this.peek(n);
    const first = this.chunks[0];
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.size -= n;
    return out;
  }
}

/**
 * Reads the records of an S3 object that Firehose wrote for the delivery
 * stream deliveryStream, and decrypts them with decryptor. It yields one
 * entry per record: its value, or the error that record met (the next
 * records are still read). Bytes that cannot be split into envelopes (a
 * truncated envelope, a bad header, plaintext) end the object with one
 * last entry whose error is an OpenError. Errors of the source are thrown.
 *
 * @param {import('./decryptor.js').Decryptor} decryptor
 * @param {string} deliveryStream the delivery stream name or ARN
 * @param {AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>} source
 *   a Node Readable (such as an S3 GetObject Body) or any (async) iterable of chunks
 * @returns {AsyncGenerator<FirehoseRecord>}
 */
export async function* readFirehoseObject(decryptor, deliveryStream, source) {
  if (typeof decryptor?.decryptFor !== 'function') throw new ConfigError('readFirehoseObject: want a Decryptor');
  const s = decryptor.firehose.get(deliveryStream);
  const it = source?.[Symbol.asyncIterator]?.() ?? source?.[Symbol.iterator]?.();
  if (it === undefined) throw new ConfigError('readFirehoseObject: want an async iterable of chunks');
  const q = new ChunkQueue(it);
  let offset = 0;
  try {
    for (let index = 0; ; index++) {
      if (!(await q.fill(1))) return;
      if (!(await q.fill(HEADER_SIZE))) {
        yield { index, offset, error: new OpenError() };
        return;
      }
      const size = envelopeSize(q.peek(HEADER_SIZE));
      if (size < 0 || !(await q.fill(size))) {
        yield { index, offset, error: new OpenError() };
        return;
      }
      const { envelope } = parse(q.take(size));
      const at = offset;
      offset += size;
      let entry;
      try {
        const k = await decryptor.cache.get(envelope.wrappedKey, s);
        const { partitionKey, payload } = k.key.open(envelope);
        entry = { index, offset: at, value: { partitionKey: partitionKey.toString('utf8'), data: payload, encrypted: true, keyArn: k.keyArn } };
      } catch (err) {
        entry = { index, offset: at, error: asKsseError(err) };
      }
      yield entry;
    }
  } finally {
    await it.return?.();
  }
}
