/**
 * ksse for Node.js: client-side Kinesis encryption, wire-compatible with
 * the Go library (FORMAT.md), with the consumer policy of
 * CONSUMER-POLICY.md.
 * @module ksse
 */

export * from './errors.js';
export {
  parse, open, seal, newKey, isEnvelope, Envelope, EnvelopeKey,
  OVERHEAD, MAX_PARTITION_KEY, MAX_WRAPPED_KEY, MAX_PAYLOAD,
} from './envelope.js';
export { Decryptor } from './decryptor.js';
export { Encryptor, OUTBOUND_PARTITION_KEY, MAX_PUT_RECORDS_ENTRIES, MAX_FIREHOSE_RECORD_SIZE } from './encryptor.js';
export { lambdaHandler, logReject } from './lambda.js';
export { readFirehoseObject } from './firehose.js';
export { kinesisStream, firehoseStream, hashKey } from './stream.js';
