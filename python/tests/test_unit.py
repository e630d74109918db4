"""Unit tests without a server: streams, construction, errors, repr."""

from __future__ import annotations

import base64
import pickle
import unittest

import ksse
from ksse import envelope

from _fakes import FAKE_ARN, FakeKMS

STREAM_ARN = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"


def fake_pair(stream: str = "orders") -> tuple[FakeKMS, ksse.Encryptor, ksse.Decryptor]:
    kms = FakeKMS(ksse.kinesis_stream(stream).context)
    return kms, ksse.Encryptor(kms, FAKE_ARN), ksse.Decryptor(kms, [FAKE_ARN])


class StreamTest(unittest.TestCase):
    def test_names_and_arns(self) -> None:
        self.assertEqual(ksse.kinesis_stream("orders"), ksse.Stream("kinesis", "orders"))
        self.assertEqual(ksse.kinesis_stream(STREAM_ARN).name, "orders")
        self.assertEqual(ksse.kinesis_stream(STREAM_ARN + "/consumer/app:1700000000").name, "orders")
        self.assertEqual(ksse.kinesis_stream("orders").ad, b"kinesis:orders")
        self.assertEqual(ksse.kinesis_stream("orders").context, {"kinesis:stream": "orders"})
        fh = ksse.firehose_stream("arn:aws:firehose:us-east-1:111122223333:deliverystream/events")
        self.assertEqual((fh.ad, fh.context), (b"firehose:events", {"firehose:deliverystream": "events"}))

    def test_invalid(self) -> None:
        for bad in ["", "a" * 129, "a b", "arn:aws:s3:::bucket", "arn:aws:kinesis:us-east-1:1:table/x", "ü"]:
            with self.subTest(bad), self.assertRaises(ksse.InvalidStreamError):
                ksse.kinesis_stream(bad)
        with self.assertRaises(ksse.InvalidStreamError):
            ksse.firehose_stream(STREAM_ARN)


class ConstructionTest(unittest.TestCase):
    def test_strict_by_default(self) -> None:
        with self.assertRaises(ksse.ConfigError) as cm:
            ksse.Decryptor(FakeKMS({}))
        self.assertIn("insecure_allow_any_key", str(cm.exception))
        d = ksse.Decryptor(FakeKMS({}), insecure_allow_any_key=True)
        self.assertEqual(d.cache.allowed_key_arns, ())

    def test_non_arn_entries_refused(self) -> None:
        for bad in [
            "11111111-2222-3333-4444-555555555555",
            "alias/orders",
            "arn:aws:kms:us-east-1:111122223333:alias/orders",
            "mrk-1234",
            "",
        ]:
            with self.subTest(bad), self.assertRaises(ksse.ConfigError) as cm:
                ksse.Decryptor(FakeKMS({}), [bad])
            self.assertIn("key ARN", str(cm.exception))
        with self.assertRaises(ksse.ConfigError):
            ksse.Decryptor(FakeKMS({}), FAKE_ARN)  # a str, not a list
        with self.assertRaises(ksse.ConfigError):
            ksse.Decryptor(FakeKMS({}), [FAKE_ARN], insecure_allow_any_key=True)
        with self.assertRaises(ksse.ConfigError):
            ksse.Decryptor(None, [FAKE_ARN])

    def test_errors(self) -> None:
        for cls in (ksse.OpenError, ksse.NotEncryptedError, ksse.KeyNotAllowedError, ksse.KMSAccessDeniedError,
                    ksse.KMSDisabledError, ksse.KMSInvalidStateError, ksse.KMSNotFoundError,
                    ksse.KMSInvalidKeyUsageError, ksse.KMSUnusableKeyError, ksse.MalformedObjectError):
            err = cls("Decrypt", "X", "m") if issubclass(cls, ksse.KMSError) else cls("m")
            self.assertTrue(ksse.is_permanent(err), cls)
            self.assertIsInstance(err, ksse.KsseError)
        for err in (ksse.KMSThrottlingError("Decrypt", "ThrottlingException", ""), ksse.KMSError("Decrypt", "", ""),
                    ksse.RateLimitedError("x"), ksse.ConfigError("x"), ValueError("x"), TimeoutError()):
            self.assertFalse(ksse.is_permanent(err), err)


class DecryptTest(unittest.TestCase):
    def test_round_trip(self) -> None:
        kms, enc, dec = fake_pair()
        e = enc.encrypt("orders", "customer-42", b'{"order":42}')
        self.assertEqual(e.partition_key, "ksse")
        self.assertEqual(e.explicit_hash_key, ksse.explicit_hash_key("customer-42"))
        d = dec.decrypt(STREAM_ARN, e.data)
        self.assertEqual((d.partition_key, d.data, d.encrypted, d.key_arn), ("customer-42", b'{"order":42}', True, FAKE_ARN))

    def test_rejections(self) -> None:
        kms, enc, dec = fake_pair()
        data = enc.encrypt("orders", "p", b"x").data
        with self.assertRaises(ksse.NotEncryptedError):
            dec.decrypt("orders", b'{"plain":1}')
        with self.assertRaises(ksse.OpenError):
            dec.decrypt("orders", data + b"\x00")
        with self.assertRaises(ksse.OpenError):
            dec.decrypt("payments", data)
        with self.assertRaises(ksse.OpenError):
            dec.decrypt("orders", data[:-1] + bytes([data[-1] ^ 1]))
        plain = ksse.Decryptor(kms, [FAKE_ARN], allow_plaintext=True).decrypt("orders", b"plain")
        self.assertEqual((plain.data, plain.encrypted), (b"plain", False))

    def test_key_not_allowed_after_decrypt(self) -> None:
        kms, enc, _ = fake_pair()
        other = FAKE_ARN.replace("11111111", "99999999")
        dec = ksse.Decryptor(kms, [other, other.replace("99999999", "88888888")])
        with self.assertRaises(ksse.KeyNotAllowedError):
            dec.decrypt("orders", enc.encrypt("orders", "p", b"x").data)

    def test_explicit_hash_key(self) -> None:
        self.assertEqual(ksse.explicit_hash_key("abc"), str(int("900150983cd24fb0d6963f7d28e17f72", 16)))
        self.assertEqual(ksse.explicit_hash_key("a"), str(int("0cc175b9c0f1b6a831c399e269772661", 16)))

    def test_partition_key_rules(self) -> None:
        _, enc, dec = fake_pair()
        for bad in ["", "x" * 257, "\ud800"]:
            with self.subTest(bad), self.assertRaises(ksse.InvalidPartitionKeyError):
                enc.encrypt("orders", bad, b"x")
        pk = "𝄞" * 256
        self.assertEqual(dec.decrypt("orders", enc.encrypt("orders", pk, b"x").data).partition_key, pk)

    def test_record_too_large(self) -> None:
        _, enc, _ = fake_pair()
        with self.assertRaises(ksse.RecordTooLargeError):
            enc.encrypt("orders", "p", bytes(1 << 20))

    def test_put_records_nothing_sent_on_failure(self) -> None:
        _, enc, _ = fake_pair()

        class Kinesis:
            calls = 0

            def put_records(self, **kw):
                Kinesis.calls += 1
                return {"Records": [{"SequenceNumber": "1", "ShardId": "s"} for _ in kw["Records"]]}

        k = Kinesis()
        with self.assertRaises(ksse.InvalidPartitionKeyError):
            enc.put_records("orders", [("a", b"1"), ("", b"2")], kinesis=k)
        with self.assertRaises(ksse.RecordTooLargeError):
            enc.put_records("orders", [("a", b"1"), ("b", bytes(1 << 20))], kinesis=k)
        with self.assertRaises(ksse.ConfigError):
            enc.put_records("orders", [("a", b"1")] * 501, kinesis=k)
        self.assertEqual(Kinesis.calls, 0)
        res = enc.put_records("orders", [("a", b"1")] * 500, kinesis=k)
        self.assertEqual(len(res), 500)
        self.assertTrue(all(r.ok for r in res))

    def test_producer_key_cached_5_minutes(self) -> None:
        class Counting(FakeKMS):
            gdk = 0

            def generate_data_key(self, **params):
                Counting.gdk += 1
                return super().generate_data_key(**params)

        clock = [0.0]
        kms = Counting(ksse.kinesis_stream("orders").context)
        enc = ksse.Encryptor(kms, FAKE_ARN, clock=lambda: clock[0])
        for _ in range(10):
            enc.encrypt("orders", "p", b"x")
        clock[0] = 299.0
        enc.encrypt("orders", "p", b"x")
        self.assertEqual(Counting.gdk, 1)
        clock[0] = 300.0
        enc.encrypt("orders", "p", b"x")
        self.assertEqual(Counting.gdk, 2)


class LambdaEventTest(unittest.TestCase):
    def test_consumer_arn_and_bad_base64(self) -> None:
        _, enc, dec = fake_pair()
        consumer = STREAM_ARN + "/consumer/app:1700000000"

        def rec(seq: str, data: str) -> dict:
            return {"eventID": f"shardId-000000000000:{seq}", "eventSourceARN": consumer,
                    "kinesis": {"data": data, "partitionKey": "ksse", "sequenceNumber": seq}}

        good = base64.b64encode(enc.encrypt("orders", "customer-42", b"hello").data).decode()
        event = {"Records": [rec("1", good), rec("2", "!!not base64!!"), rec("3", good)]}
        rejected = []
        records, failures = ksse.decrypt_event(dec, event, lambda r, e: rejected.append((r["eventID"], type(e))))
        self.assertEqual([r["kinesis"]["partitionKey"] for r in records], ["customer-42", "customer-42"])
        self.assertEqual(base64.b64decode(records[0]["kinesis"]["data"]), b"hello")
        self.assertEqual(failures, [])
        self.assertEqual(rejected, [("shardId-000000000000:2", ksse.NotEncryptedError)])
        self.assertEqual(event["Records"][0]["kinesis"]["data"], good, "the event is not modified")


class SecretHygieneTest(unittest.TestCase):
    def secrets(self, kms: FakeKMS, key: ksse.Key) -> list[str]:
        """Forms of the key material that must not appear in any repr."""
        out = []
        for secret in (kms.data_key, key.record_key(bytes(16))):
            out += [secret.hex(), repr(secret), secret.hex()[:16], repr(secret)[2:20]]
        return out

    def test_no_key_material_in_repr(self) -> None:
        kms, enc, dec = fake_pair()
        data = enc.encrypt("orders", "p", b"x").data
        dec.decrypt("orders", data)
        key, _ = dec.cache.get(kms.wrapped, ksse.kinesis_stream("orders"))
        pkey = enc._cache.get(ksse.kinesis_stream("orders"))
        objects = [key, pkey, dec, enc, dec.cache, enc._cache, dec.stats(), enc.stats(),
                   dec.decrypt("orders", data), enc.encrypt("orders", "p", b"x"), envelope.parse_one(data)]
        objects += list(vars(dec.cache).values()) + list(dec.cache._entries.values())
        for obj in objects:
            for text in (repr(obj), str(obj)):
                for s in self.secrets(kms, key):
                    self.assertNotIn(s, text, f"{type(obj).__name__} shows key material")
        self.assertIn("wrapped_key=<", repr(key))

    def test_key_not_picklable(self) -> None:
        kms, _, _ = fake_pair()
        key = ksse.Key(kms.data_key, kms.wrapped, b"kinesis:orders")
        with self.assertRaises(TypeError):
            pickle.dumps(key)
        with self.assertRaises((AttributeError, TypeError)):
            vars(key)

    def test_errors_carry_no_record_content(self) -> None:
        kms, enc, dec = fake_pair()
        data = enc.encrypt("orders", "secret-pk", b"secret-payload").data
        for bad in (data + b"!", data[:-1], b"secret-payload"):
            try:
                dec.decrypt("orders", bad)
            except ksse.KsseError as err:
                self.assertNotIn("secret", str(err) + repr(err))
            else:
                self.fail("no error")


if __name__ == "__main__":
    unittest.main()
