/**
 * Stream identity: the associated data and KMS encryption context of a
 * Kinesis data stream or a Firehose delivery stream, and the hash key that
 * routes a record to its shard.
 * @module ksse/stream
 */

import crypto from 'node:crypto';
import { ConfigError } from './errors.js';

/**
 * @typedef {object} Stream
 * @property {'kinesis'|'firehose'} kind
 * @property {string} name the stream name
 * @property {string} ad the envelope associated data, kind:name
 * @property {Record<string, string>} context the KMS encryption context
 */

const NAME = /^[a-zA-Z0-9_.-]{1,128}$/;

/**
 * @param {'kinesis'|'firehose'} kind
 * @param {string} resource the ARN resource prefix
 * @param {string} s a name or an ARN
 * @returns {Stream}
 */
function parseStream(kind, resource, s) {
  if (typeof s !== 'string') throw new ConfigError(`${kind} stream: expected a name or ARN`);
  let name = s;
  if (s.startsWith('arn:')) {
    const parts = s.split(':');
    const res = parts.slice(5).join(':');
    if (parts.length < 6 || parts[2] !== kind || !res.startsWith(resource)) {
      throw new ConfigError(`${JSON.stringify(s)} is not a ${kind} stream ARN`);
    }
    name = res.slice(resource.length);
  }
  if (!NAME.test(name)) {
    throw new ConfigError(`invalid ${kind} stream ${JSON.stringify(s)} (want 1 to 128 of a-z, A-Z, 0-9, _ . -)`);
  }
  const context = kind === 'kinesis' ? { 'kinesis:stream': name } : { 'firehose:deliverystream': name };
  return Object.freeze({ kind, name, ad: `${kind}:${name}`, context: Object.freeze(context) });
}

/**
 * Returns the Stream of a Kinesis data stream given by name, by ARN
 * (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME), or by the ARN of one
 * of its enhanced fan-out consumers (…:stream/NAME/consumer/C:T).
 * @param {string} nameOrArn
 * @returns {Stream}
 * @throws {ConfigError} for an invalid name or ARN
 */
export function kinesisStream(nameOrArn) {
  let s = nameOrArn;
  if (typeof s === 'string' && s.startsWith('arn:')) {
    const i = s.indexOf('/consumer/');
    if (i > 0) s = s.slice(0, i);
  }
  return parseStream('kinesis', 'stream/', s);
}

/**
 * Returns the Stream of a Firehose delivery stream given by name or ARN
 * (arn:PARTITION:firehose:REGION:ACCOUNT:deliverystream/NAME).
 * @param {string} nameOrArn
 * @returns {Stream}
 * @throws {ConfigError} for an invalid name or ARN
 */
export function firehoseStream(nameOrArn) {
  return parseStream('firehose', 'deliverystream/', nameOrArn);
}

/**
 * Returns the Kinesis hash key of a partition key: MD5 of its UTF-8 bytes
 * read as a 128-bit big-endian unsigned integer, in decimal.
 * @param {string} partitionKey
 * @returns {string}
 */
export function hashKey(partitionKey) {
  return BigInt('0x' + crypto.createHash('md5').update(partitionKey, 'utf8').digest('hex')).toString(10);
}

/**
 * A bounded memo of parsed streams, by the string the caller gave.
 */
export class StreamMemo {
  /** @type {Map<string, Stream>} */
  #m = new Map();
  /** @param {(s: string) => Stream} parse */
  constructor(parse) {
    this.parse = parse;
  }

  /**
   * @param {string} s
   * @returns {Stream}
   */
  get(s) {
    let v = this.#m.get(s);
    if (v === undefined) {
      v = this.parse(s);
      if (this.#m.size >= 4096) this.#m.clear();
      this.#m.set(s, v);
    }
    return v;
  }
}
