/**
 * The producer side: encrypt records and put them with
 * @aws-sdk/client-kinesis.
 * @module ksse/encryptor
 */

import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { OVERHEAD } from './envelope.js';
import { ConfigError, NotSentError } from './errors.js';
import { DEFAULTS, ProducerCache } from './keycache.js';
import { StreamMemo, firehoseStream, hashKey, kinesisStream } from './stream.js';

/** The partition key of every encrypted record on the wire. */
export const OUTBOUND_PARTITION_KEY = 'ksse';
/** The most records one PutRecords call takes. */
export const MAX_PUT_RECORDS_ENTRIES = 500;
/** The Firehose limit on a record, 1,000 KiB. */
export const MAX_FIREHOSE_RECORD_SIZE = 1000 * 1024;
/** The Kinesis limit on a partition key, in Unicode characters. */
export const MAX_PARTITION_KEY_LENGTH = 256;

/**
 * @typedef {object} EncryptorOptions
 * @property {{send: Function}} kms a KMSClient from @aws-sdk/client-kms
 * @property {{send: Function}} [kinesis] a KinesisClient, for putRecords
 * @property {string} keyId the KMS key: key ID, key ARN, alias name or alias ARN
 * @property {() => number} [now] clock in ms (default Date.now)
 * @property {number} [ttlMs] data key lifetime (default 5 minutes)
 * @property {number} [maxRecordSize] the stream's record limit, envelope and partition key (default 1 MiB)
 * @property {number} [maxPutRecordsSize] the limit of one PutRecords request (default 5 MiB)
 */

/**
 * @typedef {object} Encrypted
 * @property {Buffer} data the envelope
 * @property {string} partitionKey always "ksse"
 * @property {string} explicitHashKey routes the record to the shard of its plaintext partition key
 */

/**
 * @typedef {object} PutResult
 * @property {number} failedRecordCount
 * @property {{sequenceNumber?: string, shardId?: string, errorCode?: string, errorMessage?: string}[]} records
 *   one per input record, in order: a sequence number, or the Kinesis error
 */

/**
 * Encrypts records under data keys of one KMS key. Create one per process
 * and share it.
 */
export class Encryptor {
  /**
   * @param {EncryptorOptions} options
   */
  constructor(options) {
    const o = options ?? {};
    if (typeof o.kms?.send !== 'function') throw new ConfigError('kms: want a KMSClient');
    if (o.kinesis !== undefined && typeof o.kinesis?.send !== 'function') throw new ConfigError('kinesis: want a KinesisClient');
    if (typeof o.keyId !== 'string' || o.keyId === '') throw new ConfigError('keyId: want a KMS key ID, key ARN or alias');
    const limits = { ...DEFAULTS };
    if (o.ttlMs !== undefined) limits.ttlMs = positive('ttlMs', o.ttlMs);
    this.maxRecordSize = o.maxRecordSize === undefined ? 1 << 20 : positive('maxRecordSize', o.maxRecordSize);
    this.maxPutRecordsSize = o.maxPutRecordsSize === undefined ? Math.max(5 << 20, this.maxRecordSize) : positive('maxPutRecordsSize', o.maxPutRecordsSize);
    /** The data key cache; stats.kmsCalls counts GenerateDataKey calls. */
    this.cache = new ProducerCache(o.kms, o.keyId, { now: o.now ?? Date.now, limits });
    this.kinesis = o.kinesis;
    this.streams = new StreamMemo(kinesisStream);
    this.firehoseStreams = new StreamMemo(firehoseStream);
  }

  /**
   * Encrypts one record for a Firehose delivery stream (no partition key),
   * to send with the Firehose PutRecord or PutRecordBatch. Delivered to S3,
   * such records are read back with readFirehoseObject.
   * @param {string} deliveryStream the delivery stream name or ARN
   * @param {Uint8Array | string} data the payload
   * @returns {Promise<Buffer>} the envelope
   * @throws {import('./errors.js').KsseError} ConfigError for a record over 1,000 KiB encrypted, KMSError
   */
  async encryptFirehose(deliveryStream, data) {
    const s = this.firehoseStreams.get(deliveryStream);
    const b = toBuffer(data);
    if (OVERHEAD + b.length + 1 > MAX_FIREHOSE_RECORD_SIZE) throw new ConfigError(`record too large for Firehose: ${b.length} bytes`);
    const k = await this.cache.get(s);
    const size = k.key.sealedSize(0, b.length);
    if (size > MAX_FIREHOSE_RECORD_SIZE) throw new ConfigError(`record of ${size} bytes encrypted, Firehose limit ${MAX_FIREHOSE_RECORD_SIZE}`);
    return k.key.seal(Buffer.alloc(0), b);
  }

  /**
   * Encrypts one record for a Kinesis stream.
   * @param {string} stream the stream name or ARN
   * @param {string} partitionKey 1 to 256 Unicode characters
   * @param {Uint8Array | string} data the payload (a string is sent as UTF-8)
   * @returns {Promise<Encrypted>}
   * @throws {import("./errors.js").KsseError} ConfigError for invalid input, KMSError
   */
  async encrypt(stream, partitionKey, data) {
    const s = this.streams.get(stream);
    const pk = checkPartitionKey(partitionKey);
    const payload = this.#checkSize(pk, data);
    return this.#seal(s, pk, payload);
  }

  /**
   * @param {import('./stream.js').Stream} s
   * @param {Buffer} pk
   * @param {Buffer} payload
   * @returns {Promise<Encrypted>}
   */
  async #seal(s, pk, payload) {
    const k = await this.cache.get(s);
    const size = k.key.sealedSize(pk.length, payload.length) + OUTBOUND_PARTITION_KEY.length;
    if (size > this.maxRecordSize) throw new ConfigError(`record of ${size} bytes encrypted, limit ${this.maxRecordSize}`);
    return {
      data: k.key.seal(pk, payload),
      partitionKey: OUTBOUND_PARTITION_KEY,
      explicitHashKey: hashKey(pk.toString('utf8')),
    };
  }

  /**
   * Checks a record's size before its data key is known (counting a
   * one-byte wrapped key) and returns its payload as a Buffer.
   * @param {Buffer} pk
   * @param {Uint8Array | string} data
   * @returns {Buffer}
   */
  #checkSize(pk, data) {
    const b = toBuffer(data);
    const size = OVERHEAD + pk.length + b.length + 1 + OUTBOUND_PARTITION_KEY.length;
    if (size > this.maxRecordSize) throw new ConfigError(`record of ${size} bytes encrypted, limit ${this.maxRecordSize}`);
    return b;
  }

  /**
   * Encrypts records and sends them with one PutRecords call. If any
   * record fails to encrypt, nothing is sent and a NotSentError lists the
   * records at fault. Kinesis' per-record failures are returned, by index.
   * An error of the call itself is thrown as the SDK gives it.
   * @param {string} stream the stream name or ARN
   * @param {{partitionKey: string, data: Uint8Array | string, explicitHashKey?: string}[]} records 1 to 500
   * @returns {Promise<PutResult>}
   */
  async putRecords(stream, records) {
    if (this.kinesis === undefined) throw new ConfigError('putRecords needs the kinesis option');
    const s = this.streams.get(stream);
    if (!Array.isArray(records) || records.length < 1 || records.length > MAX_PUT_RECORDS_ENTRIES) {
      throw new ConfigError(`records: want 1 to ${MAX_PUT_RECORDS_ENTRIES} records`);
    }
    // Caller mistakes first, so that a batch that cannot be sent makes no
    // KMS call.
    const failures = [];
    const checked = records.map((r, index) => {
      try {
        const pk = checkPartitionKey(r?.partitionKey);
        return { pk, payload: this.#checkSize(pk, r?.data) };
      } catch (error) {
        failures.push({ index, error });
        return null;
      }
    });
    if (failures.length > 0) throw new NotSentError(failures);
    const entries = [];
    let total = 0;
    for (const [index, c] of checked.entries()) {
      try {
        const e = await this.#seal(s, c.pk, c.payload);
        const ehk = records[index].explicitHashKey ?? e.explicitHashKey;
        entries.push({ Data: e.data, PartitionKey: e.partitionKey, ExplicitHashKey: ehk });
        total += e.data.length + e.partitionKey.length;
      } catch (error) {
        failures.push({ index, error });
        if (!(error instanceof ConfigError)) break; // a KMS failure: the rest would fail too
      }
    }
    if (failures.length > 0) throw new NotSentError(failures);
    if (total > this.maxPutRecordsSize) {
      throw new ConfigError(`request of ${total} bytes encrypted, limit ${this.maxPutRecordsSize}: split the batch`);
    }
    const ref = stream.startsWith('arn:') ? { StreamARN: stream } : { StreamName: stream };
    const out = await this.kinesis.send(new PutRecordsCommand({ ...ref, Records: entries }));
    const res = Array.isArray(out?.Records) ? out.Records : [];
    let failedRecordCount = 0;
    const results = entries.map((_, i) => {
      const r = res.length === entries.length ? res[i] : undefined;
      if (r === undefined || r.ErrorCode || !r.SequenceNumber) {
        failedRecordCount++;
        return { errorCode: r?.ErrorCode || 'Unknown', errorMessage: r?.ErrorMessage ?? (r ? '' : `response has ${res.length} results for ${entries.length} records`) };
      }
      return { sequenceNumber: r.SequenceNumber, shardId: r.ShardId };
    });
    return { failedRecordCount, records: results };
  }

  /** Forgets the data keys. Encrypting fails afterwards. */
  close() {
    this.cache.close();
  }
}

/**
 * Applies the Kinesis rule: 1 to 256 Unicode characters, well formed.
 * @param {unknown} pk
 * @returns {Buffer} its UTF-8 bytes
 */
function checkPartitionKey(pk) {
  if (typeof pk !== 'string' || pk === '') throw new ConfigError('partition key: want a non-empty string');
  if (!pk.isWellFormed()) throw new ConfigError('partition key: not well-formed Unicode');
  let n = 0;
  for (const _ of pk) if (++n > MAX_PARTITION_KEY_LENGTH) throw new ConfigError(`partition key: more than ${MAX_PARTITION_KEY_LENGTH} characters`);
  return Buffer.from(pk, 'utf8');
}

/**
 * @param {Uint8Array | string} data
 * @returns {Buffer} data, or its UTF-8 bytes
 */
function toBuffer(data) {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new ConfigError('data: want a Uint8Array or a string');
}

/**
 * @param {string} name
 * @param {unknown} v
 * @returns {number}
 */
function positive(name, v) {
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new ConfigError(`${name} must be a positive number`);
  return v;
}

