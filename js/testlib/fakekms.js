/**
 * An in-memory KMS for tests that need no server: GenerateDataKey and
 * Decrypt with encryption context checks, wrapped keys being AES-GCM under
 * a per-key master key.
 */

import crypto from 'node:crypto';

export const FAKE_ACCOUNT = '111122223333';

/** Makes an SDK-like service error. */
export function serviceError(name) {
  const e = new Error(`${name}: injected`);
  e.name = name;
  e.$fault = 'client';
  return e;
}

export class FakeKMS {
  /** @param {number} [nkeys] */
  constructor(nkeys = 2) {
    this.keys = new Map();
    for (let i = 0; i < nkeys; i++) {
      const arn = `arn:aws:kms:us-east-1:${FAKE_ACCOUNT}:key/${crypto.randomUUID()}`;
      this.keys.set(arn, crypto.randomBytes(32));
    }
    this.arns = [...this.keys.keys()];
    this.calls = [];
  }

  /** @param {{constructor: {name: string}, input: any}} cmd */
  async send(cmd) {
    const op = cmd.constructor.name.replace(/Command$/, '');
    this.calls.push({ op, input: cmd.input });
    const ctx = Buffer.from(JSON.stringify(Object.entries(cmd.input.EncryptionContext ?? {}).sort()));
    if (op === 'GenerateDataKey') {
      const arn = this.arns.find((a) => a === cmd.input.KeyId) ?? this.arns[0];
      const pt = crypto.randomBytes(32);
      const iv = crypto.randomBytes(12);
      const c = crypto.createCipheriv('aes-256-gcm', this.keys.get(arn), iv);
      c.setAAD(ctx);
      const idx = Buffer.from([this.arns.indexOf(arn)]);
      const blob = Buffer.concat([idx, iv, c.update(pt), c.final(), c.getAuthTag()]);
      return { Plaintext: pt, CiphertextBlob: blob, KeyId: arn };
    }
    if (op === 'Decrypt') {
      const blob = Buffer.from(cmd.input.CiphertextBlob);
      const arn = this.arns[blob[0]];
      if (blob.length !== 1 + 12 + 32 + 16 || arn === undefined) throw serviceError('InvalidCiphertextException');
      if (cmd.input.KeyId !== undefined && cmd.input.KeyId !== arn) throw serviceError('IncorrectKeyException');
      const d = crypto.createDecipheriv('aes-256-gcm', this.keys.get(arn), blob.subarray(1, 13));
      d.setAAD(ctx);
      d.setAuthTag(blob.subarray(45));
      let pt;
      try {
        pt = Buffer.concat([d.update(blob.subarray(13, 45)), d.final()]);
      } catch {
        throw serviceError('InvalidCiphertextException');
      }
      return { Plaintext: pt, KeyId: arn };
    }
    throw new Error(`FakeKMS: ${op} not supported`);
  }
}

/**
 * A seeded PRNG (mulberry32).
 * @param {number} seed
 */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    /** @param {number} n @returns {number} an integer in [0, n) */
    int: (n) => Math.floor(next() * n),
    /** @param {number} n @returns {Buffer} */
    bytes: (n) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
      return b;
    },
  };
}
