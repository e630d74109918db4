/**
 * Loader of the test vectors of envelope/testdata (format documented in
 * envelope/internal/vecgen/main.go).
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The envelope/testdata directory of the repository. */
export const TESTDATA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../envelope/testdata');

/**
 * @typedef {object} Vector
 * @property {string} file
 * @property {'success'|'failure'} expect
 * @property {string} stage "parse", "trailing" or "open" for a failure
 * @property {Buffer} dataKey
 * @property {Buffer} wrappedKey
 * @property {string} ad
 * @property {Buffer} [partitionKey]
 * @property {Buffer} [payload]
 * @property {number} [payloadSize]
 * @property {Buffer} [payloadSha256]
 * @property {string} comment
 * @property {Buffer} envelope
 */

const HEX_FIELDS = {
  'data key': 'dataKey',
  'wrapped key': 'wrappedKey',
  'partition key': 'partitionKey',
  payload: 'payload',
  'payload sha256': 'payloadSha256',
};

/**
 * Parses one vector file.
 * @param {string} text
 * @returns {Omit<Vector, 'file'>}
 */
export function parseVector(text) {
  const v = /** @type {any} */ ({});
  const lines = text.split('\n');
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') break;
    let key, val;
    const c = line.indexOf(': ');
    if (c >= 0) {
      key = line.slice(0, c);
      val = line.slice(c + 2);
    } else if (line.endsWith(':')) {
      key = line.slice(0, -1);
      val = '';
    } else {
      throw new Error(`bad header line ${JSON.stringify(line)}`);
    }
    if (key in HEX_FIELDS) {
      if (!/^([0-9a-f]{2})*$/.test(val)) throw new Error(`header ${key}: not hex`);
      v[HEX_FIELDS[key]] = Buffer.from(val, 'hex');
    } else if (key === 'payload size') {
      if (!/^\d+$/.test(val)) throw new Error(`header ${key}: not a number`);
      v.payloadSize = Number(val);
    } else if (key === 'expect' || key === 'stage' || key === 'ad' || key === 'comment') {
      v[key] = val;
    } else {
      throw new Error(`unknown header ${JSON.stringify(key)}`);
    }
  }
  if (i === lines.length) throw new Error('no blank line after the header');
  const b64 = lines.slice(i + 1).join('').trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new Error('body is not padded base64');
  v.envelope = Buffer.from(b64, 'base64');
  if (!v.dataKey || !v.wrappedKey || v.ad === undefined) throw new Error('missing data key, wrapped key or ad');
  if (v.expect === 'success' && !v.stage) {
    if (!v.partitionKey) throw new Error('success without partition key');
    if (!v.payload && (v.payloadSize === undefined || !v.payloadSha256 || v.payloadSha256.length !== 32)) {
      throw new Error('success without payload');
    }
  } else if (!(v.expect === 'failure' && ['parse', 'trailing', 'open'].includes(v.stage))) {
    throw new Error(`bad expect ${v.expect} / stage ${v.stage}`);
  }
  return v;
}

/**
 * Loads the pinned vector and every vector file.
 * @returns {Vector[]}
 */
export function loadVectors() {
  const dir = path.join(TESTDATA, 'vectors');
  const files = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => path.join(dir, f))
    : [];
  const pinned = path.join(TESTDATA, 'v1-pinned.txt');
  if (fs.existsSync(pinned)) files.unshift(pinned);
  return files.map((file) => {
    try {
      return { file, ...parseVector(fs.readFileSync(file, 'utf8')) };
    } catch (err) {
      throw new Error(`${file}: ${err.message}`);
    }
  });
}
