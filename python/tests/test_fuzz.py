"""Property tests: random and mutated input never yields unauthenticated data.

Seeded and bounded in time; each test also requires a minimum number of
cases, so a slow machine fails loudly rather than testing nothing.
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
import unittest

import ksse
from ksse import envelope

from _fakes import FAKE_ARN, FakeKMS

SEED = int(os.environ.get("KSSE_FUZZ_SEED", "20261203"))
BUDGET = float(os.environ.get("KSSE_FUZZ_SECONDS", "1.5"))
ALLOWED = (ksse.OpenError, ksse.NotEncryptedError, ksse.KeyNotAllowedError, ksse.KMSError, ksse.RateLimitedError)


def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One random mutation of data."""
    b = bytearray(data)
    op = rng.randrange(9)
    if op == 0 and b:  # bit flip
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncate
        del b[rng.randrange(len(b) + 1) :]
    elif op == 2:  # append
        b += rng.randbytes(rng.randrange(1, 40))
    elif op == 3 and len(b) >= 6:  # wrapped key length
        struct.pack_into(">H", b, 4, rng.choice([0, 1, 6144, 6145, 0xFFFF, rng.randrange(0x10000)]))
    elif op == 4 and len(b) >= 10:  # body length
        body = struct.unpack_from(">I", b, 6)[0]
        struct.pack_into(">I", b, 6, rng.choice([0, 29, 30, body - 1, body + 1, 0xFFFFFFFF, rng.randrange(1 << 32)]) & 0xFFFFFFFF)
    elif op == 5 and b:  # overwrite a run
        i = rng.randrange(len(b))
        n = rng.randrange(1, 17)
        b[i : i + n] = rng.randbytes(n)
    elif op == 6 and b:  # delete a run
        i = rng.randrange(len(b))
        del b[i : i + rng.randrange(1, 17)]
    elif op == 7:  # splice with another envelope
        o = rng.choice(others)
        i, j = rng.randrange(len(b) + 1), rng.randrange(len(o) + 1)
        b = b[:i] + o[j:]
    else:  # insert bytes
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.randbytes(rng.randrange(1, 9))
    return bytes(b)


class FuzzTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rng = random.Random(SEED)
        self.kms = FakeKMS(ksse.kinesis_stream("orders").context)
        self.enc = ksse.Encryptor(self.kms, FAKE_ARN)
        self.dec = ksse.Decryptor(self.kms, [FAKE_ARN], rate=1e9, burst=10**9)
        self.addCleanup(self.dec.close)
        self.valid = [
            self.enc.encrypt("orders", self.rng.choice(["p", "customer-42", "ключ", "k" * 256]), self.rng.randbytes(n)).data
            for n in (0, 1, 15, 16, 17, 100, 1024, 3000)
        ]

    def check_decrypt(self, data: bytes) -> None:
        try:
            d = self.dec.decrypt("orders", data)
        except ALLOWED:
            return
        # Only an unchanged envelope may open.
        self.assertIn(data, self.valid, "a changed record opened")
        self.assertTrue(d.encrypted)

    def test_random_bytes(self) -> None:
        n, deadline = 0, time.monotonic() + BUDGET / 2
        while time.monotonic() < deadline:
            size = self.rng.randrange(0, 400)
            data = self.rng.randbytes(size)
            if self.rng.random() < 0.5:  # a plausible header
                data = envelope.MAGIC + struct.pack(">HI", self.rng.randrange(1, 200), self.rng.randrange(30, 300)) + data
            for fn in (envelope.parse, envelope.parse_one):
                try:
                    fn(data)
                except ksse.OpenError:
                    pass
            with self.assertRaises(ALLOWED):
                self.dec.decrypt("orders", data)
            n += 1
        self.assertGreater(n, 500)

    def test_mutated_envelopes(self) -> None:
        n, deadline = 0, time.monotonic() + BUDGET
        while time.monotonic() < deadline:
            data = self.rng.choice(self.valid)
            for _ in range(self.rng.randrange(1, 4)):
                data = mutate(self.rng, data, self.valid)
            self.check_decrypt(data)
            n += 1
        self.assertGreater(n, 1000)

    def test_mutated_batches(self) -> None:
        n, deadline = 0, time.monotonic() + BUDGET / 2
        while time.monotonic() < deadline:
            batch = [mutate(self.rng, d, self.valid) if self.rng.random() < 0.5 else d for d in self.valid]
            for data, res in zip(batch, self.dec.decrypt_batch("orders", batch)):
                if isinstance(res, ksse.Decrypted):
                    self.assertIn(data, self.valid)
                else:
                    self.assertIsInstance(res, ALLOWED)
            n += 1
        self.assertGreater(n, 50)

    def test_mutated_firehose_objects(self) -> None:
        kms = FakeKMS(ksse.firehose_stream("events").context)
        enc = ksse.Encryptor(kms, FAKE_ARN)
        dec = ksse.Decryptor(kms, [FAKE_ARN], rate=1e9, burst=10**9)
        payloads = [self.rng.randbytes(self.rng.randrange(0, 300)) for _ in range(6)]
        obj = b"".join(enc.encrypt_firehose("events", p) for p in payloads)
        n, deadline = 0, time.monotonic() + BUDGET / 2
        while time.monotonic() < deadline:
            data = mutate(self.rng, obj, [obj])
            r = ksse.FirehoseReader(dec, "events", io.BytesIO(data))
            got = []
            for _ in range(len(payloads) + 5):
                try:
                    d = r.read()
                except ALLOWED:
                    continue
                if d is None:
                    break
                got.append(d.data)
            for p in got:
                self.assertIn(p, payloads, "a record that was never sent")
            n += 1
        self.assertGreater(n, 100)


if __name__ == "__main__":
    unittest.main()
