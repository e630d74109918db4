"""Records per second per core: ksse.open versus raw AES-GCM decrypt.

Run: python3 bench.py [seconds per measurement, default 2]. In one thread it opens envelopes
of 100 B, 1 KiB and 25 KiB payloads (partition key "customer-42", 184-byte
wrapped key, the stream key cached as a Decryptor holds it), and decrypts
the same payload size with cryptography's AESGCM: "raw" under one key made
once, "raw, new key" with a new AESGCM object per record, as an envelope
needs (each record has its own key). Then it times, at 1 KiB, the steps
of open one by one: their sum without Python glue is the floor of any open
built on cryptography's objects, as each record needs a new AES-CTR (or
ECB) context and a new AESGCM object.
"""

from __future__ import annotations

import os
import sys
import time

from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import ksse
from ksse import envelope

SIZES = [("100 B", 100), ("1 KiB", 1024), ("25 KiB", 25 << 10)]


ROUNDS = 10


def rate(fn, seconds: float) -> float:
    """Calls of fn per second, over about seconds."""
    n, batch = 0, 256
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(batch):
            fn()
        n += batch
    return n / elapsed


def best_rates(fns: list, seconds: float) -> list[float]:
    """The best rate of each fn over ROUNDS interleaved rounds.

    Interleaving and keeping the best round make the ratios robust to other
    load on the machine.
    """
    best = [0.0] * len(fns)
    for _ in range(ROUNDS):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], rate(fn, seconds / ROUNDS))
    return best


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    key = envelope.Key(os.urandom(32), os.urandom(184), b"kinesis:orders")
    print(f"{'payload':>8} {'open rec/s':>12} {'raw rec/s':>12} {'raw/open':>9} {'raw, new key':>13} {'ratio':>6}")
    for label, size in SIZES:
        payload = os.urandom(size)
        env = envelope.parse_one(envelope.seal(key, b"customer-42", payload))
        assert envelope.open(key, env)[1] == payload

        k, nonce, aad = os.urandom(32), os.urandom(12), os.urandom(39)
        aead = AESGCM(k)
        ct = aead.encrypt(nonce, payload, aad)

        open_rate, raw_rate, new_key_rate = best_rates(
            [
                lambda: envelope.open(key, env),
                lambda: aead.decrypt(nonce, ct, aad),
                lambda: AESGCM(k).decrypt(nonce, ct, aad),
            ],
            seconds,
        )
        print(
            f"{label:>8} {open_rate:>12,.0f} {raw_rate:>12,.0f} {raw_rate / open_rate:>8.2f}x"
            f" {new_key_rate:>13,.0f} {new_key_rate / open_rate:>5.2f}x"
        )
    steps(seconds)
    decrypt_rate(seconds)


def steps(seconds: float) -> None:
    """Microseconds per record of each step of open at 1 KiB, and their floor."""
    key = envelope.Key(os.urandom(32), os.urandom(184), b"kinesis:orders")
    env = envelope.parse_one(envelope.seal(key, b"customer-42", os.urandom(1024)))
    salt = bytes(env.salt)
    rk = key.record_key(salt)
    k, nonce, aad = os.urandom(32), os.urandom(12), os.urandom(39)
    ct = AESGCM(k).encrypt(nonce, os.urandom(1024), aad)
    aead = AESGCM(k)
    head = bytes(32)
    blocks = b"\xff" * 12 + bytes(4) + b"\xff" * 12 + b"\x00\x00\x00\x01"
    ecb, aes = modes.ECB(), algorithms.AES  # a read of either module costs about 2 us

    def ecb_fast(k: bytes):
        """An ECB context as open's fast path makes its CTR context (ECB would then need a Python XOR)."""
        alg = object.__new__(aes)
        alg.key = k
        return rust_openssl.ciphers.create_encryption_ctx(alg, ecb)

    assert ecb_fast(rk).update(blocks) == Cipher(aes(rk), ecb).encryptor().update(blocks)
    names_fns = [
        ("HKDF-Expand: record key", lambda: key.record_key(salt)),
        ("AES-CTR context, 32 B (fast path)", lambda: envelope._pk_stream(rk).update(head)),
        ("AES-CTR context, 32 B (public API)", lambda: envelope._public_ctr(rk).update(head)),
        ("AES-ECB context, 2 blocks (fast path)", lambda: ecb_fast(rk).update(blocks)),
        ("AESGCM(new key).decrypt", lambda: AESGCM(k).decrypt(nonce, ct, aad)),
        ("raw AESGCM decrypt, one key", lambda: aead.decrypt(nonce, ct, aad)),
        ("open", lambda: envelope.open(key, env)),
    ]
    us = [1e6 / r for r in best_rates([fn for _, fn in names_fns], seconds)]
    path = "fast path" if envelope._pk_stream is envelope._fast_ctr else "public API (fast path unavailable)"
    print(f"steps at 1 KiB (us per record; open's CTR context by the {path}):")
    for (name, _), u in zip(names_fns, us):
        print(f"  {name:<40} {u:6.2f}")
    floor = us[0] + us[1] + us[4]
    print(f"  {'floor: HKDF + fast CTR + AESGCM(new key)':<40} {floor:6.2f}  = {floor / us[5]:.2f}x raw; open = {us[6] / us[5]:.2f}x raw")


class _KMS:
    """A KMS stand-in that unwraps one data key (no network in the loop)."""

    def __init__(self, data_key: bytes, wrapped: bytes) -> None:
        self.data_key, self.wrapped = data_key, wrapped

    def decrypt(self, **params):
        return {"Plaintext": self.data_key, "KeyId": ARN}

    def generate_data_key(self, **params):
        return {"Plaintext": self.data_key, "CiphertextBlob": self.wrapped, "KeyId": ARN}


ARN = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"


def decrypt_rate(seconds: float) -> None:
    """Decryptor.decrypt at 1 KiB, with the data key cached: open plus the
    cache lookup, the stream name and the Decrypted record."""
    kms = _KMS(os.urandom(32), os.urandom(184))
    data = ksse.Encryptor(kms, ARN).encrypt("orders", "customer-42", os.urandom(1024)).data
    dec = ksse.Decryptor(kms, [ARN])
    (r,) = best_rates([lambda: dec.decrypt("orders", data)], seconds)
    print(f"Decryptor.decrypt, 1 KiB, key cached: {r:,.0f} rec/s")


if __name__ == "__main__":
    main()
