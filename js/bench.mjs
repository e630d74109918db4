// Throughput of open (parse and open one envelope: HMAC record key,
// AES-CTR partition key, AES-256-GCM payload) against raw AES-256-GCM
// decryption with node:crypto of the same payload size, on one core.
//
//   node bench.mjs [seconds per case, default 2]
//
// The cases of one size run in alternating slices and are timed in CPU
// time of this process (process.cpuUsage), so that other load on a shared
// machine weighs on all of them alike: the rates are records per CPU
// second, i.e. per core.

import crypto from 'node:crypto';
import { Decryptor, newKey, open } from './src/index.js';

const SECONDS = Number(process.argv[2] ?? 2);
const SIZES = [100, 1024, 25 * 1024];
const N = 256; // distinct records per case
const SLICE = 256; // calls per slice

/** CPU time of this process so far, in seconds. */
function cpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * Runs the cases in alternating slices for SECONDS of CPU time in all and
 * returns the calls per CPU second of each.
 * @param {Record<string, (i: number) => unknown>} cases
 */
async function measure(cases) {
  const names = Object.keys(cases);
  const calls = Object.fromEntries(names.map((n) => [n, 0]));
  const time = Object.fromEntries(names.map((n) => [n, 0]));
  for (const n of names) for (let i = 0; i < 2000; i++) await cases[n](i % N); // warm up
  const end = cpu() + SECONDS;
  while (cpu() < end) {
    for (const n of names) {
      const fn = cases[n];
      const t0 = cpu();
      for (let j = 0; j < SLICE; j++) {
        const r = fn(calls[n]++ % N);
        if (r instanceof Promise) await r;
      }
      time[n] += cpu() - t0;
    }
  }
  return Object.fromEntries(names.map((n) => [n, calls[n] / time[n]]));
}

const fmt = (x) => Math.round(x).toLocaleString('en-US').padStart(11);

console.log(`node ${process.version}, ${SECONDS} CPU s per size, records per CPU second (one core)`);
console.log('payload      open   decrypt(*)    raw GCM   raw/open');
for (const size of SIZES) {
  const wk = crypto.randomBytes(184);
  const dk = crypto.randomBytes(32);
  const key = newKey(dk, wk, 'kinesis:bench');
  const pk = Buffer.from('customer-00042');
  const envs = Array.from({ length: N }, () => key.seal(pk, crypto.randomBytes(size)));

  const gkey = crypto.randomBytes(32);
  const raw = Array.from({ length: N }, () => {
    const nonce = crypto.randomBytes(12);
    const c = crypto.createCipheriv('aes-256-gcm', gkey, nonce);
    const ct = Buffer.concat([c.update(crypto.randomBytes(size)), c.final()]);
    return { nonce, ct, tag: c.getAuthTag() };
  });
  // The whole consumer path with a cached key (KMS called once).
  const arn = 'arn:aws:kms:us-east-1:111122223333:key/bench';
  const dec = new Decryptor({ kms: { send: async () => ({ Plaintext: Buffer.from(dk), KeyId: arn }) }, allowedKeyArns: [arn] });

  let sink = 0;
  const r = await measure({
    open: (i) => {
      sink += open(key, envs[i]).payload.length;
    },
    raw: (i) => {
      const x = raw[i];
      const d = crypto.createDecipheriv('aes-256-gcm', gkey, x.nonce);
      d.setAuthTag(x.tag);
      sink += d.update(x.ct).length;
      d.final();
    },
    decrypt: async (i) => {
      sink += (await dec.decrypt('bench', envs[i])).data.length;
    },
  });
  if (sink === 0) throw new Error('nothing decrypted');
  const label = size >= 1024 ? `${size / 1024} KiB` : `${size} B`;
  console.log(`${label.padEnd(7)} ${fmt(r.open)} ${fmt(r.decrypt)} ${fmt(r.raw)}   ${(r.raw / r.open).toFixed(2)}x`);
}
console.log('(*) Decryptor.decrypt: stream lookup, parse, cache hit, open, awaited one at a time');
