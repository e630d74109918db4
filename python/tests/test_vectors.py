"""Every vector of envelope/testdata, by expect and stage."""

from __future__ import annotations

import hashlib
import unittest

import ksse
from ksse import envelope

from _vectors import TESTDATA, load_vectors, vector_files

PINNED_SHA256 = "7fe2f8bd26e5059ad649e30275a6d1b68969793d40cc3c9eeb6314d7ac1a59e9"


class VectorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.vectors = load_vectors()

    def test_found(self) -> None:
        files = vector_files()
        self.assertGreater(len(files), 1, f"no vector files under {TESTDATA}")
        self.assertEqual(len(self.vectors), len(files))
        stages = {v.stage for v in self.vectors if v.expect == "failure"}
        self.assertEqual(stages, {"parse", "trailing", "open"})
        self.assertGreaterEqual(sum(v.expect == "success" for v in self.vectors), 10)

    def test_pinned_unchanged(self) -> None:
        data = (TESTDATA / "v1-pinned.txt").read_bytes()
        self.assertEqual(hashlib.sha256(data).hexdigest(), PINNED_SHA256, "v1-pinned.txt changed")

    def test_vectors(self) -> None:
        for v in self.vectors:
            with self.subTest(v.file, comment=v.comment):
                self.run_vector(v)

    def test_vectors_public_cipher_api(self) -> None:
        """The same with the partition key stream made by the public API only."""
        fast = envelope._pk_stream
        envelope._pk_stream = envelope._public_ctr
        self.addCleanup(setattr, envelope, "_pk_stream", fast)
        for v in self.vectors:
            with self.subTest(v.file):
                self.run_vector(v)

    def run_vector(self, v) -> None:
        key = ksse.Key(v.data_key, v.wrapped_key, v.ad)
        if v.stage == "parse":
            with self.assertRaises(ksse.OpenError):
                envelope.parse(v.envelope)
            with self.assertRaises(ksse.OpenError):
                envelope.parse_one(v.envelope)
            return
        env, rest = envelope.parse(v.envelope)
        self.assertEqual(env.to_bytes(), v.envelope[: len(v.envelope) - len(rest)], "parse then marshal")
        if v.stage == "trailing":
            self.assertGreater(len(rest), 0)
            with self.assertRaises(ksse.OpenError):
                envelope.parse_one(v.envelope)
            return
        self.assertEqual(len(rest), 0)
        if v.stage == "open":
            with self.assertRaises(ksse.OpenError):
                envelope.open(key, env)
            return
        pk, payload = envelope.open(key, env)
        self.assertEqual(pk.hex(), v.partition_key.hex(), "partition key")
        self.assertTrue(v.payload_matches(payload), "payload")
        self.assertEqual(len(v.envelope), key.sealed_size(len(pk), len(payload)))
        # seal with the vector's own salt and nonce gives its bytes.
        n = len(pk)
        salt = bytes(env.salt)
        nonce = v.envelope[envelope.HEADER_SIZE + 2 + n : envelope.HEADER_SIZE + 2 + n + 12]
        self.assertEqual(envelope._seal(key, pk, payload, salt, nonce), v.envelope, "seal")
        # and a random seal opens to the same record.
        self.assertEqual(envelope.open(key, envelope.parse_one(envelope.seal(key, pk, payload))), (pk, payload))


if __name__ == "__main__":
    unittest.main()
