"""Key cache semantics against moto KMS, through a counting wrapper."""

from __future__ import annotations

import os
import threading
import time
import unittest

import ksse
from ksse import envelope

from _moto import CountingKMS, FakeClock, client, new_key, unique


class CacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.kms = client("kms")
        cls.arn = new_key(cls.kms)
        cls.other_arn = new_key(cls.kms)

    def setUp(self) -> None:
        self.clock = FakeClock()
        self.counting = CountingKMS(self.kms)
        self.stream = unique("cache")

    def decryptor(self, **kw) -> ksse.Decryptor:
        kw.setdefault("clock", self.clock)
        d = ksse.Decryptor(self.counting, [self.arn], **kw)
        self.addCleanup(d.close)
        return d

    def record(self, pk: str = "pk", data: bytes = b"payload", stream: str | None = None, arn: str | None = None) -> bytes:
        """A record sealed under a new data key (one GenerateDataKey)."""
        enc = ksse.Encryptor(self.kms, arn or self.arn)
        return enc.encrypt(stream or self.stream, pk, data).data

    def forged(self, n: int) -> list[bytes]:
        """n records whose wrapped keys are forged (random bytes)."""
        key = ksse.Key(os.urandom(32), os.urandom(184), ksse.kinesis_stream(self.stream).ad)
        out = []
        for _ in range(n):
            key = ksse.Key(os.urandom(32), os.urandom(184), key.ad)
            out.append(envelope.seal(key, b"pk", b"forged"))
        return out

    def test_hit_after_miss(self) -> None:
        d = self.decryptor()
        rec = self.record()
        for _ in range(5):
            r = d.decrypt(self.stream, rec)
            self.assertEqual((r.partition_key, r.data, r.encrypted, r.key_arn), ("pk", b"payload", True, self.arn))
        self.assertEqual(self.counting.calls, 1)

    def test_ttl_from_creation(self) -> None:
        d = self.decryptor()
        rec = self.record()
        d.decrypt(self.stream, rec)
        self.clock.advance(299.9)
        d.decrypt(self.stream, rec)  # hits do not extend the TTL
        self.assertEqual(self.counting.calls, 1)
        self.clock.advance(0.1)
        d.decrypt(self.stream, rec)
        self.assertEqual(self.counting.calls, 2)

    def test_lru_bound(self) -> None:
        d = self.decryptor(max_entries=2)
        a, b, c = self.record("a"), self.record("b"), self.record("c")
        d.decrypt(self.stream, a)
        d.decrypt(self.stream, b)
        d.decrypt(self.stream, a)  # a is now the most recent
        d.decrypt(self.stream, c)  # evicts b
        self.assertEqual(self.counting.calls, 3)
        d.decrypt(self.stream, a)
        self.assertEqual(self.counting.calls, 3)
        d.decrypt(self.stream, b)
        self.assertEqual(self.counting.calls, 4)
        st = d.stats()
        self.assertEqual(st.entries, 2)
        self.assertEqual(st.evictions, 2)

    def wait_for(self, cond, what: str) -> None:
        """Wait until cond() holds, failing after 10 s."""
        deadline = time.monotonic() + 10
        while not cond():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            time.sleep(0.005)

    def concurrent(self, d: ksse.Decryptor, rec: bytes, n: int) -> list[object]:
        """n threads decrypt rec while the KMS call is held; return their outcomes."""
        self.counting.gate = threading.Event()
        results: list[object] = []

        def run() -> None:
            try:
                results.append(d.decrypt(self.stream, rec))
            except ksse.KsseError as err:
                results.append(err)

        threads = [threading.Thread(target=run) for _ in range(n)]
        for t in threads:
            t.start()
        # Every caller has missed (one is in KMS, the others wait for it).
        self.wait_for(lambda: d.stats().misses == n, f"{n} misses")
        self.counting.gate.set()
        for t in threads:
            t.join()
        return results

    def test_concurrent_misses_coalesce(self) -> None:
        d = self.decryptor()
        results = self.concurrent(d, self.record(), 12)
        self.assertEqual([r.data for r in results], [b"payload"] * 12)
        self.assertEqual(self.counting.calls, 1)

    def test_concurrent_failures_coalesce(self) -> None:
        d = self.decryptor()
        errors = self.concurrent(d, self.forged(1)[0], 8)
        self.assertTrue(all(type(e) is ksse.OpenError for e in errors), errors)
        self.assertEqual(len({id(e) for e in errors}), 8, "each caller gets its own exception")
        self.assertEqual(self.counting.calls, 1)

    def test_negative_cache(self) -> None:
        d = self.decryptor()
        rec = self.forged(1)[0]
        for _ in range(3):
            with self.assertRaises(ksse.OpenError):
                d.decrypt(self.stream, rec)
        self.assertEqual(self.counting.calls, 1)
        self.clock.advance(60)  # 60 s after the last lookup
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        self.assertEqual(self.counting.calls, 2)

    def test_negative_cache_extended_by_lookups(self) -> None:
        d = self.decryptor()
        rec = self.forged(1)[0]
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        self.clock.advance(59.9)
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        self.clock.advance(59.9)  # 119.8 s after the refusal, 59.9 s after the last lookup
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        self.assertEqual(self.counting.calls, 1)
        self.clock.advance(60)
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        self.assertEqual(self.counting.calls, 2)

    def test_negative_cache_at_most_ten_ttls(self) -> None:
        d = self.decryptor()
        rec = self.forged(1)[0]
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        for _ in range(11):  # lookups up to 550 s, then 599.5 s
            self.clock.advance(50)
            with self.assertRaises(ksse.OpenError):
                d.decrypt(self.stream, rec)
        self.clock.advance(49.5)
        self.assertIsInstance(d.cache.peek(ksse.envelope.parse_one(rec).wrapped_key, ksse.kinesis_stream(self.stream)), ksse.OpenError)
        self.assertEqual(self.counting.calls, 1)
        self.clock.advance(0.5)  # 600 s after the refusal
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, rec)
        self.assertEqual(self.counting.calls, 2)

    def test_remembered_refusal_is_compact(self) -> None:
        d = self.decryptor()
        rec = self.record(arn=self.other_arn)
        forged = self.forged(1)[0]
        for r, cls in ((rec, ksse.KeyNotAllowedError), (forged, ksse.OpenError)):
            with self.assertRaises(cls):
                d.decrypt(self.stream, r)
        # Any-key mode: a KMS refusal of a permanent class is remembered too.
        anyk = ksse.Decryptor(self.counting, insecure_allow_any_key=True, clock=self.clock)
        self.addCleanup(anyk.close)
        self.counting.faults = ["DisabledException"]
        with self.assertRaises(ksse.KMSDisabledError):
            anyk.decrypt(self.stream, self.record())
        stored = [f.err for f in d.cache._negative.values()] + [f.err for f in anyk.cache._negative.values()]
        self.assertEqual(len(stored), 3)
        for err in stored:
            self.assertIsNone(err.__traceback__)
            self.assertIsNone(err.__context__, "no SDK exception, request or response kept")
            self.assertIsNone(err.__cause__)
            self.assertLessEqual(len(str(err)), 400)
        with self.assertRaises(ksse.KeyNotAllowedError) as cm:
            d.decrypt(self.stream, rec)
        self.assertIsNone(cm.exception.__context__)

    def test_negative_cache_by_stream(self) -> None:
        # A wrapped key refused for one stream is not remembered for another.
        d = self.decryptor()
        rec = self.record(stream=self.stream)
        with self.assertRaises(ksse.OpenError):
            d.decrypt("elsewhere", rec)
        self.assertEqual(d.decrypt(self.stream, rec).data, b"payload")
        self.assertEqual(self.counting.calls, 2)

    def test_transient_not_cached(self) -> None:
        d = self.decryptor()
        rec = self.record()
        self.counting.faults = ["ThrottlingException", "InternalFailure"]
        with self.assertRaises(ksse.KMSThrottlingError) as cm:
            d.decrypt(self.stream, rec)
        self.assertFalse(ksse.is_permanent(cm.exception))
        with self.assertRaises(ksse.KMSError) as cm:
            d.decrypt(self.stream, rec)
        self.assertFalse(cm.exception.permanent)
        self.assertEqual(d.decrypt(self.stream, rec).data, b"payload")
        self.assertEqual(self.counting.calls, 3)

    def test_permanent_kms_errors_classified_and_cached(self) -> None:
        """Without KeyId (any-key mode), KMS refusals of the key are permanent."""
        cases = {
            "AccessDeniedException": ksse.KMSAccessDeniedError,
            "DisabledException": ksse.KMSDisabledError,
            "KMSInvalidStateException": ksse.KMSInvalidStateError,
            "NotFoundException": ksse.KMSNotFoundError,
            "InvalidKeyUsageException": ksse.KMSInvalidKeyUsageError,
        }
        for code, cls in cases.items():
            with self.subTest(code):
                self.counting.calls = 0
                d = ksse.Decryptor(self.counting, insecure_allow_any_key=True, clock=self.clock)
                self.addCleanup(d.close)
                rec = self.record()
                self.counting.faults = [code]
                for _ in range(2):
                    with self.assertRaises(cls) as cm:
                        d.decrypt(self.stream, rec)
                    self.assertTrue(cm.exception.permanent)
                    self.assertTrue(ksse.is_permanent(cm.exception))
                    self.assertEqual(cm.exception.allowed_key, "")
                self.assertEqual(self.counting.calls, 1)
                self.assertNotIn("KeyId", self.counting.params[-1])

    def test_allowed_key_refusals_transient(self) -> None:
        """KMS refusing a pinned allowed key itself is transient and not remembered."""
        cases = {
            "AccessDeniedException": ksse.KMSAccessDeniedError,  # with a message: the key's policy or IAM
            "DisabledException": ksse.KMSDisabledError,
            "KMSInvalidStateException": ksse.KMSInvalidStateError,
            "NotFoundException": ksse.KMSNotFoundError,
        }
        for code, cls in cases.items():
            with self.subTest(code):
                self.counting.calls = 0
                d = self.decryptor()
                rec = self.record()
                self.counting.faults = [code, code]
                for _ in range(2):
                    with self.assertRaises(cls) as cm:
                        d.decrypt(self.stream, rec)
                    self.assertFalse(cm.exception.permanent)
                    self.assertFalse(ksse.is_permanent(cm.exception))
                    self.assertEqual(cm.exception.allowed_key, self.arn)
                    self.assertIn("itself", str(cm.exception))
                self.assertEqual(self.counting.calls, 2, "not remembered")
                self.assertEqual(d.stats().negative_entries, 0)
                # The operator fixes the key: the record decrypts at once.
                self.assertEqual(d.decrypt(self.stream, rec).data, b"payload")
        # Key usage is about the wrapped key's use, not the key: permanent.
        d = self.decryptor()
        rec = self.record()
        self.counting.faults = ["InvalidKeyUsageException"]
        for _ in range(2):
            with self.assertRaises(ksse.KMSInvalidKeyUsageError) as cm:
                d.decrypt(self.stream, rec)
            self.assertTrue(ksse.is_permanent(cm.exception))

    def test_token_bucket(self) -> None:
        d = self.decryptor(rate=1, burst=2)
        recs = [self.record(str(i)) for i in range(3)]
        d.decrypt(self.stream, recs[0])
        d.decrypt(self.stream, recs[1])
        with self.assertRaises(ksse.RateLimitedError) as cm:
            d.decrypt(self.stream, recs[2])
        self.assertFalse(ksse.is_permanent(cm.exception))
        self.assertEqual(self.counting.calls, 2, "no KMS call when the bucket is empty")
        d.decrypt(self.stream, recs[0])  # hits need no token
        self.clock.advance(1.0)
        self.assertEqual(d.decrypt(self.stream, recs[2]).partition_key, "2")
        self.assertEqual(self.counting.calls, 3)

    def test_batch_new_key_bound(self) -> None:
        d = self.decryptor(max_new_keys_per_batch=3)
        recs = [self.record(str(i)) for i in range(5)]
        batch = recs + [recs[0]]
        res = d.decrypt_batch(self.stream, batch)
        self.assertEqual([r.partition_key for r in res[:3]], ["0", "1", "2"])
        self.assertIsInstance(res[3], ksse.RateLimitedError)
        self.assertIsInstance(res[4], ksse.RateLimitedError)
        self.assertEqual(res[5].partition_key, "0")
        self.assertEqual(self.counting.calls, 3)
        # The next batch unwraps the rest.
        res = d.decrypt_batch(self.stream, batch)
        self.assertTrue(all(isinstance(r, ksse.Decrypted) for r in res))
        self.assertEqual(self.counting.calls, 5)

    def test_batch_unwraps_concurrently(self) -> None:
        d = self.decryptor()
        recs = [self.record(str(i)) for i in range(20)]
        self.counting.gate = threading.Event()
        out: list[object] = []
        t = threading.Thread(target=lambda: out.extend(d.decrypt_batch(self.stream, recs)))
        t.start()
        # The fan-out is 16: 16 calls in flight at once, and no more.
        self.wait_for(lambda: self.counting.inflight == 16, "16 concurrent Decrypt calls")
        self.counting.gate.set()
        t.join()
        self.assertEqual([r.partition_key for r in out], [str(i) for i in range(20)])
        self.assertEqual(self.counting.calls, 20)
        self.assertEqual(self.counting.max_inflight, 16)

    def test_batch_key_failure_shared(self) -> None:
        d = self.decryptor()
        rec = self.record()
        self.counting.faults = ["ThrottlingException"]
        res = d.decrypt_batch(self.stream, [rec, rec, rec])
        self.assertTrue(all(isinstance(r, ksse.KMSThrottlingError) for r in res))
        self.assertEqual(len({id(r) for r in res}), 3)
        self.assertEqual(self.counting.calls, 1)

    def test_strict_key_id_sent(self) -> None:
        """Each allowed key is sent as KeyId in turn, with the stream's context."""
        rec = self.record()
        self.decryptor().decrypt(self.stream, rec)
        two = ksse.Decryptor(self.counting, [self.other_arn, self.arn], clock=self.clock)
        self.addCleanup(two.close)
        self.assertEqual(two.decrypt(self.stream, rec).key_arn, self.arn)
        self.assertEqual([p["KeyId"] for p in self.counting.params], [self.arn, self.other_arn, self.arn])
        self.assertEqual(self.counting.params[0]["EncryptionContext"], {"kinesis:stream": self.stream})
        other = ksse.Decryptor(self.counting, [self.other_arn], clock=self.clock)
        self.addCleanup(other.close)
        for _ in range(2):
            with self.assertRaises(ksse.KeyNotAllowedError) as cm:
                other.decrypt(self.stream, rec)
            self.assertTrue(ksse.is_permanent(cm.exception))
        self.assertEqual(self.counting.calls, 4, "key not allowed is remembered")

    def test_forged_flood(self) -> None:
        d = self.decryptor(max_entries=16)
        good = self.record("good")
        self.assertEqual(d.decrypt(self.stream, good).partition_key, "good")
        forged = self.forged(5000)
        rate_limited = opened = 0
        for i in range(0, len(forged), 500):
            batch = forged[i : i + 250] + [good] + forged[i + 250 : i + 500]
            res = d.decrypt_batch(self.stream, batch)
            self.assertEqual(res[250].partition_key, "good")
            for r in res[:250] + res[251:]:
                self.assertIsInstance(r, (ksse.OpenError, ksse.RateLimitedError))
                rate_limited += isinstance(r, ksse.RateLimitedError)
                opened += isinstance(r, ksse.Decrypted)
        st = d.stats()
        self.assertEqual(opened, 0)
        # One call for the good key, then at most the bucket's burst.
        self.assertLessEqual(self.counting.calls, 1 + 256)
        self.assertGreater(rate_limited, 5000 - 256)
        self.assertEqual(st.evictions, 0)
        self.assertEqual(st.entries, 1)
        calls = self.counting.calls
        self.assertEqual(d.decrypt(self.stream, good).partition_key, "good")
        self.assertEqual(self.counting.calls, calls, "the working key stayed cached")

    def test_negative_set_bounded_fifo(self) -> None:
        d = ksse.Decryptor(self.counting, [self.arn], clock=self.clock, rate=1e9, burst=10**6)
        self.addCleanup(d.close)
        d.cache._max_negative = 100
        good = self.record("good")
        d.decrypt(self.stream, good)
        forged = self.forged(300)
        for f in forged:
            with self.assertRaises(ksse.OpenError):
                d.decrypt(self.stream, f)
        st = d.stats()
        self.assertEqual(st.negative_entries, 100)
        self.assertEqual(st.entries, 1)
        self.assertEqual(st.evictions, 0)
        calls = self.counting.calls
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, forged[-1])  # still remembered
        with self.assertRaises(ksse.OpenError):
            d.decrypt(self.stream, forged[0])  # evicted first (FIFO)
        self.assertEqual(self.counting.calls, calls + 1)
        d.decrypt(self.stream, good)
        self.assertEqual(self.counting.calls, calls + 1)


if __name__ == "__main__":
    unittest.main()
