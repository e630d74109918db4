"""Every vector of envelope/testdata, by expect and stage."""

from __future__ import annotations

import hashlib
import io
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


class StreamReaderVectorTest(unittest.TestCase):
    """envelope.Reader, the splitter of Firehose objects, on every vector."""

    # Vectors whose header alone must be rejected, and those whose header
    # is valid while the input is short (FORMAT.md, Test vectors).
    HEADER_REJECTED = {"body-length-29", "body-length-max+1", "body-length-ffffffff",
                       "wrapped-key-length-0", "wrapped-key-length-6145", "wrapped-key-length-ffff"}
    HEADER_ACCEPTED = {"body-length-max", "body-length-plus-1", "wrapped-key-length-plus-1"}

    @classmethod
    def setUpClass(cls) -> None:
        cls.vectors = load_vectors()

    def test_split(self) -> None:
        for v in self.vectors:
            with self.subTest(v.file):
                r = envelope.Reader(io.BytesIO(v.envelope))
                if v.stage == "parse":
                    if not v.envelope:
                        self.assertIsNone(r.next())
                        continue
                    with self.assertRaises(ksse.MalformedObjectError):
                        r.next()
                    with self.assertRaises(ksse.MalformedObjectError):
                        r.next()  # sticky
                    continue
                env, offset = r.next()
                self.assertEqual(offset, 0)
                self.assertEqual(env.to_bytes(), envelope.parse(v.envelope)[0].to_bytes())
                if v.stage == "trailing":
                    self.assertLess(env.size, len(v.envelope))
                    continue
                self.assertIsNone(r.next())
                if v.expect == "success":
                    key = ksse.Key(v.data_key, v.wrapped_key, v.ad)
                    self.assertEqual(envelope.open(key, env)[0], v.partition_key)

    def test_header_alone(self) -> None:
        seen = 0
        for v in self.vectors:
            name = v.file.removesuffix(".txt")
            if name not in self.HEADER_REJECTED | self.HEADER_ACCEPTED:
                continue
            seen += 1
            with self.subTest(name):
                f = HeaderOnly(v.envelope[: envelope.HEADER_SIZE])
                r = envelope.Reader(f)
                if name in self.HEADER_REJECTED:
                    with self.assertRaises(ksse.MalformedObjectError):
                        r.next()
                    self.assertFalse(f.asked_more, "read past a header it should reject")
                else:
                    with self.assertRaises(NeedMore):
                        r.next()
        self.assertGreaterEqual(seen, 6)

    def test_concatenation(self) -> None:
        ok = [v for v in self.vectors if v.expect == "success"]
        data = b"".join(v.envelope for v in ok)
        r = envelope.Reader(Trickle(data))
        for v in ok:
            env, _ = r.next()
            key = ksse.Key(v.data_key, v.wrapped_key, v.ad)
            pk, payload = envelope.open(key, env)
            self.assertEqual(pk, v.partition_key)
            self.assertTrue(v.payload_matches(payload))
        self.assertIsNone(r.next())
        self.assertEqual(r.offset, len(data))


class NeedMore(Exception):
    """Raised by HeaderOnly when asked for bytes past its data."""


class HeaderOnly:
    """A file of the given bytes that raises NeedMore when they run out."""

    def __init__(self, data: bytes) -> None:
        self.f = io.BytesIO(data)
        self.asked_more = False

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if not b and n:
            self.asked_more = True
            raise NeedMore()
        return b


class Trickle:
    """A file that returns at most 7 bytes a read, as a slow network would."""

    def __init__(self, data: bytes) -> None:
        self.f = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self.f.read(min(n, 7))


if __name__ == "__main__":
    unittest.main()
