/**
 * Lambda helper: decrypt Kinesis events for a handler, with partial batch
 * responses (ReportBatchItemFailures) per CONSUMER-POLICY.md.
 * @module ksse/lambda
 */

import { asKsseError } from './decryptor.js';
import { ConfigError, isPermanent } from './errors.js';
import { kinesisStream } from './stream.js';

/**
 * @typedef {object} KinesisEventRecord
 * @property {string} eventID "shardId-…:sequence number"
 * @property {string} eventSourceARN the stream ARN (or consumer ARN)
 * @property {{data: string, partitionKey: string, sequenceNumber: string, encryptionType?: string}} kinesis
 *   data is base64, as Lambda gives it
 */

/**
 * @typedef {{batchItemFailures: {itemIdentifier: string}[]}} BatchResponse
 */

/**
 * The default onReject: one structured line at level ERROR with the event
 * ID, the sequence number and the reason; never record content.
 * @param {KinesisEventRecord} record
 * @param {import('./errors.js').KsseError} err
 */
export function logReject(record, err) {
  console.error(JSON.stringify({
    level: 'ERROR',
    msg: 'ksse: record rejected: it will never decrypt; not retried',
    eventID: record?.eventID,
    eventSourceARN: record?.eventSourceARN,
    sequenceNumber: record?.kinesis?.sequenceNumber,
    code: err?.code,
    reason: err?.message,
  }));
}

/**
 * Returns a Lambda handler of Kinesis events that decrypts the records and
 * calls fn with the event holding the records to process, decrypted:
 * kinesis.data is the plaintext in base64, kinesis.partitionKey the
 * plaintext partition key, kinesis.encryptionType "KMS" ("NONE" for
 * plaintext passed through).
 *
 * Records are handled per shard, in order. A record that will never
 * decrypt (permanent failure) is taken out and passed to onReject; the
 * shard goes on. At the first transient failure of a shard, the record is
 * reported in batchItemFailures and it and every later record of its shard
 * are withheld, so that Lambda delivers them again. If onReject throws, its
 * record counts as a transient failure. fn is not called when no record is
 * left; its batchItemFailures are merged into the response, and its errors
 * are thrown (Lambda retries the whole batch).
 *
 * The event source mapping must have FunctionResponseTypes
 * ["ReportBatchItemFailures"].
 *
 * @param {import('./decryptor.js').Decryptor} decryptor
 * @param {(event: any, context: any) => Promise<Partial<BatchResponse> | void>} fn
 * @param {{onReject?: (record: KinesisEventRecord, err: import('./errors.js').KsseError) => void | Promise<void>}} [options]
 * @returns {(event: any, context: any) => Promise<BatchResponse>}
 */
export function lambdaHandler(decryptor, fn, options = {}) {
  if (typeof decryptor?.decryptBatch !== 'function') throw new ConfigError('lambdaHandler: want a Decryptor');
  if (typeof fn !== 'function') throw new ConfigError('lambdaHandler: want a handler function');
  const onReject = options.onReject ?? logReject;
  return async (event, context) => {
    const records = Array.isArray(event?.Records) ? event.Records : [];
    const results = await decryptor.decryptBatch(records.map((r) => {
      let stream;
      try {
        stream = kinesisStream(r?.eventSourceARN);
      } catch {
        stream = undefined;
      }
      const data = typeof r?.kinesis?.data === 'string' ? Buffer.from(r.kinesis.data, 'base64') : undefined;
      return { stream, data };
    }));

    const failures = [];
    const withheld = new Set(); // shards from their first transient failure on
    const kept = [];
    for (const [i, r] of records.entries()) {
      const shard = shardOf(r);
      if (withheld.has(shard)) continue;
      const { value, error } = results[i];
      if (value !== undefined) {
        kept.push({
          ...r,
          kinesis: {
            ...r.kinesis,
            data: value.data.toString('base64'),
            partitionKey: value.encrypted ? value.partitionKey : r.kinesis.partitionKey,
            encryptionType: value.encrypted ? 'KMS' : 'NONE',
          },
        });
        continue;
      }
      const err = asKsseError(error);
      if (isPermanent(err)) {
        try {
          await onReject(r, err);
          continue;
        } catch {
          // The record could not be set aside: retry it later.
        }
      }
      withheld.add(shard);
      failures.push({ itemIdentifier: r?.kinesis?.sequenceNumber });
    }

    let resp;
    if (kept.length > 0) resp = await fn({ ...event, Records: kept }, context);
    const own = Array.isArray(resp?.batchItemFailures) ? resp.batchItemFailures : [];
    return { ...(resp ?? {}), batchItemFailures: [...own, ...failures] };
  };
}

/**
 * The identity of a record's shard: its event source and the shard ID
 * that starts its event ID.
 * @param {KinesisEventRecord} r
 */
function shardOf(r) {
  const id = String(r?.eventID ?? '');
  const i = id.indexOf(':');
  return `${r?.eventSourceARN} ${i >= 0 ? id.slice(0, i) : id}`;
}
