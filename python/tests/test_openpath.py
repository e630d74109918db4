"""The two ways open makes the partition key stream agree on every vector."""

from __future__ import annotations

import os
import unittest

import ksse
from ksse import envelope

from _vectors import load_vectors


class OpenPathTest(unittest.TestCase):
    def test_patched_stream_reaches_open(self) -> None:
        """Patching _pk_stream (as the public-API vector test does) changes open's path."""
        key = ksse.Key(os.urandom(32), os.urandom(184), b"kinesis:orders")
        env = envelope.parse_one(envelope.seal(key, b"customer-42", b"hello"))
        calls = []

        def counting(rk: bytes):
            calls.append(len(rk))
            return envelope._public_ctr(rk)

        saved = envelope._pk_stream
        envelope._pk_stream = counting
        self.addCleanup(setattr, envelope, "_pk_stream", saved)
        self.assertEqual(envelope.open(key, env), (b"customer-42", b"hello"))
        self.assertEqual(calls, [32])

    def test_fast_and_public_streams_agree(self) -> None:
        """Both contexts give the same key stream for record keys of every vector."""
        n = 0
        for v in load_vectors():
            if v.expect != "success":
                continue
            n += 1
            key = ksse.Key(v.data_key, v.wrapped_key, v.ad)
            env = envelope.parse_one(v.envelope)
            rk = key.record_key(env.salt)
            block = bytes(envelope.MAX_PARTITION_KEY + 2)
            with self.subTest(v.file):
                self.assertEqual(envelope._fast_ctr(rk).update(block), envelope._public_ctr(rk).update(block))
        self.assertGreaterEqual(n, 10)

    def test_record_key_matches_hmac(self) -> None:
        """Key.record_key is HKDF-Expand of FORMAT.md, by the stdlib's hmac."""
        import hashlib
        import hmac

        dk, wk, ad = os.urandom(32), os.urandom(184), b"kinesis:orders"
        prk = hmac.digest(wk, dk, "sha256")
        stream_key = hmac.digest(prk, b"ksse v1 stream key" + ad + b"\x01", hashlib.sha256)
        salt = os.urandom(16)
        want = hmac.digest(stream_key, b"ksse v1 record key" + salt + b"\x01", "sha256")
        self.assertEqual(ksse.Key(dk, wk, ad).record_key(salt), want)


if __name__ == "__main__":
    unittest.main()
