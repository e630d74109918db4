"""The consumer rules of the Go library: every allowed key pinned as the
KeyId of Decrypt, refusals of an allowed key itself transient, multi-Region
keys, and the bounds of remembered refusals."""

from __future__ import annotations

import base64
import os
import unittest
from typing import Any

from botocore.exceptions import ClientError

import ksse
from ksse import envelope

from _fakes import FAKE_ARN, FakeKMS
from _moto import CountingKMS, FakeClock, client, new_key, unique

OTHER_ARN = "arn:aws:kms:us-east-1:111122223333:key/99999999-2222-3333-4444-555555555555"


class MotoPinningTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.kms = client("kms")
        cls.a = new_key(cls.kms)
        cls.b = new_key(cls.kms)
        cls.c = new_key(cls.kms)

    def setUp(self) -> None:
        self.clock = FakeClock()
        self.stream = unique("pin")

    def record(self, arn: str, kms: Any = None) -> bytes:
        return ksse.Encryptor(kms or self.kms, arn).encrypt(self.stream, "pk", b"payload").data

    def decryptor(self, kms: Any, arns: list[str]) -> ksse.Decryptor:
        d = ksse.Decryptor(kms, arns, clock=self.clock)
        self.addCleanup(d.close)
        return d

    def test_each_allowed_key_pinned_with_motos_answer(self) -> None:
        # moto answers a KeyId that is not the ciphertext's key with a
        # message-less AccessDeniedException: "not this key, try the next".
        counting = CountingKMS(self.kms, aws_incorrect_key=False)
        d = self.decryptor(counting, [self.a, self.b])
        self.assertEqual(d.decrypt(self.stream, self.record(self.b)).key_arn, self.b)
        self.assertEqual([p["KeyId"] for p in counting.params], [self.a, self.b])
        with self.assertRaises(ksse.KeyNotAllowedError) as cm:
            d.decrypt(self.stream, self.record(self.c))
        self.assertTrue(ksse.is_permanent(cm.exception))
        self.assertEqual([p["KeyId"] for p in counting.params[2:]], [self.a, self.b])
        self.assertTrue(all("KeyId" in p for p in counting.params), "no call without KeyId")

    def test_duplicates_sent_once(self) -> None:
        counting = CountingKMS(self.kms)
        d = self.decryptor(counting, [self.a, self.a, self.b, self.a])
        with self.assertRaises(ksse.KeyNotAllowedError):
            d.decrypt(self.stream, self.record(self.c))
        self.assertEqual([p["KeyId"] for p in counting.params], [self.a, self.b])

    def test_refusal_of_one_allowed_key(self) -> None:
        counting = CountingKMS(self.kms)
        counting.fault_if = lambda p: p.get("KeyId") == self.a
        d = self.decryptor(counting, [self.a, self.b])
        # a is disabled; b's records still decrypt.
        counting.faults = ["DisabledException"]
        self.assertEqual(d.decrypt(self.stream, self.record(self.b)).key_arn, self.b)
        self.assertEqual(counting.calls, 2)
        # A record of neither: perhaps of a, so transient, not remembered.
        rec = self.record(self.c)
        for _ in range(2):
            counting.faults = ["DisabledException"]
            with self.assertRaises(ksse.KMSDisabledError) as cm:
                d.decrypt(self.stream, rec)
            self.assertFalse(ksse.is_permanent(cm.exception))
            self.assertEqual(cm.exception.allowed_key, self.a)
        self.assertEqual(counting.calls, 6)
        # a usable again: the record is of no allowed key, for good.
        with self.assertRaises(ksse.KeyNotAllowedError):
            d.decrypt(self.stream, rec)
        with self.assertRaises(ksse.KeyNotAllowedError):
            d.decrypt(self.stream, rec)
        self.assertEqual(counting.calls, 8)

    def test_multi_region_key_not_decryptable_by_moto(self) -> None:
        # moto cannot decrypt under a multi-Region key at all (its
        # ciphertext format holds 36-character key IDs), so the multi-Region
        # rules are tested with FakeKMS below. This test notices when moto
        # learns it.
        east = self.kms.create_key(Description="ksse mrk", MultiRegion=True)["KeyMetadata"]["Arn"]
        blob = self.kms.generate_data_key(KeyId=east, KeySpec="AES_256")["CiphertextBlob"]
        with self.assertRaises(ClientError):
            self.kms.decrypt(CiphertextBlob=blob)


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Decrypt")


class ScriptedKMS(FakeKMS):
    """FakeKMS whose Decrypt answers by KeyId: an exception, or another KeyId."""

    def __init__(self, context: dict[str, str], arn: str = FAKE_ARN, region: str = "") -> None:
        super().__init__(context, arn)
        if region:
            self.meta = type("Meta", (), {"region_name": region})()
        self.by_key: dict[str, Any] = {}
        self.params: list[dict[str, Any]] = []

    def decrypt(self, **params: Any) -> dict[str, Any]:
        self.params.append(params)
        what = self.by_key.get(params.get("KeyId", ""))
        if isinstance(what, Exception):
            raise what
        out = super().decrypt(**params)
        if isinstance(what, str):
            out["KeyId"] = what
        return out


class FakePinningTest(unittest.TestCase):
    def setUp(self) -> None:
        self.s = ksse.kinesis_stream("orders")
        self.kms = ScriptedKMS(self.s.context)
        self.rec = ksse.Encryptor(self.kms, FAKE_ARN).encrypt("orders", "pk", b"x").data

    def test_other_key_answers(self) -> None:
        for code, msg in [
            ("IncorrectKeyException", "x"),
            ("AccessDeniedException", ""),
            ("AccessDeniedException", "UnknownError"),
            ("AccessDeniedException", "The ciphertext refers to a customer master key that does not exist"),
        ]:
            with self.subTest(code=code, msg=msg):
                self.kms.by_key = {OTHER_ARN: _error(code, msg)}
                d = ksse.Decryptor(self.kms, [OTHER_ARN, FAKE_ARN])
                self.assertEqual(d.decrypt("orders", self.rec).key_arn, FAKE_ARN)
                d = ksse.Decryptor(self.kms, [OTHER_ARN])
                with self.assertRaises(ksse.KeyNotAllowedError):
                    d.decrypt("orders", self.rec)

    def test_refusal_with_a_message_is_about_the_key(self) -> None:
        msg = "User: arn:aws:sts::111122223333:assumed-role/c is not authorized to perform: kms:Decrypt"
        self.kms.by_key = {OTHER_ARN: _error("AccessDeniedException", msg)}
        d = ksse.Decryptor(self.kms, [OTHER_ARN])
        with self.assertRaises(ksse.KMSAccessDeniedError) as cm:
            d.decrypt("orders", self.rec)
        self.assertFalse(ksse.is_permanent(cm.exception))
        # Another allowed key still decrypts its records.
        d = ksse.Decryptor(self.kms, [OTHER_ARN, FAKE_ARN])
        self.assertEqual(d.decrypt("orders", self.rec).key_arn, FAKE_ARN)

    def test_returned_key_must_be_the_pinned_key(self) -> None:
        self.kms.by_key = {FAKE_ARN: OTHER_ARN}
        d = ksse.Decryptor(self.kms, [FAKE_ARN])
        with self.assertRaises(ksse.KeyNotAllowedError) as cm:
            d.decrypt("orders", self.rec)
        self.assertIn(OTHER_ARN, str(cm.exception))
        # A replica of the pinned multi-Region key is the same key.
        east = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        for returned, ok in [
            (east.replace("us-east-1", "eu-west-1"), True),
            (east.replace("111122223333", "444455556666"), False),
            (east.replace(":aws:", ":aws-cn:"), False),
            (east.replace("mrk-1234", "mrk-9234"), False),
        ]:
            with self.subTest(returned):
                self.kms.by_key = {east: returned}
                d = ksse.Decryptor(self.kms, [east])
                if ok:
                    self.assertEqual(d.decrypt("orders", self.rec).key_arn, returned)
                else:
                    with self.assertRaises(ksse.KeyNotAllowedError):
                        d.decrypt("orders", self.rec)

    def test_multi_region_key_id_in_client_region(self) -> None:
        class Meta:
            region_name = "eu-west-1"

        self.kms.meta = Meta()  # type: ignore[attr-defined]
        west = "arn:aws:kms:us-west-2:444455556666:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        plain = "arn:aws:kms:us-west-2:444455556666:key/11111111-2222-3333-4444-555555555555"
        incorrect = _error("IncorrectKeyException", "")
        self.kms.by_key = {west.replace("us-west-2", "eu-west-1"): incorrect, plain: incorrect}
        d = ksse.Decryptor(self.kms, [west, west.replace("us-west-2", "ap-south-1"), plain])
        with self.assertRaises(ksse.KeyNotAllowedError):
            d.decrypt("orders", self.rec)
        self.assertEqual(
            [p["KeyId"] for p in self.kms.params],
            [west.replace("us-west-2", "eu-west-1"), plain],
            "one call per key; the multi-Region key as its full ARN in the client's Region",
        )

    def test_multi_region_replicas(self) -> None:
        east = "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        west = east.replace("us-east-1", "us-west-2")
        kms = ScriptedKMS(self.s.context, east, "us-east-1")
        rec = ksse.Encryptor(kms, east).encrypt("orders", "pk", b"x").data
        # The replica and the key: one key, sent in the client's Region; the
        # ARN KMS returns is of the key, which matches the allowed replica.
        for allowed in ([west, east], [west]):
            with self.subTest(allowed):
                kms.params.clear()
                d = ksse.Decryptor(kms, allowed)
                self.assertEqual(d.decrypt("orders", rec).key_arn, east)
                self.assertEqual([p["KeyId"] for p in kms.params], [east])

    def test_any_key_mode_sends_no_key_id(self) -> None:
        d = ksse.Decryptor(self.kms, insecure_allow_any_key=True)
        self.assertEqual(d.decrypt("orders", self.rec).key_arn, FAKE_ARN)
        self.assertNotIn("KeyId", self.kms.params[0])

    def test_lambda_withholds_records_of_a_refused_allowed_key(self) -> None:
        self.kms.by_key = {FAKE_ARN: _error("DisabledException", "arn:... is disabled.")}
        d = ksse.Decryptor(self.kms, [FAKE_ARN])
        arn = "arn:aws:kinesis:us-east-1:111122223333:stream/orders"
        event = {
            "Records": [
                {
                    "eventSourceARN": arn,
                    "eventID": f"shardId-000000000000:{i}",
                    "kinesis": {"data": base64.b64encode(self.rec).decode(), "sequenceNumber": str(i)},
                }
                for i in range(2)
            ]
        }
        rejected: list[Any] = []
        records, failures = ksse.awslambda.decrypt_event(d, event, lambda r, e: rejected.append(e))
        self.assertEqual((records, rejected), ([], []))
        self.assertEqual(failures, [{"itemIdentifier": "0"}])
        self.kms.by_key = {}  # the operator enables the key
        records, failures = ksse.awslambda.decrypt_event(d, event, lambda r, e: rejected.append(e))
        self.assertEqual((len(records), failures, rejected), (2, [], []))


class RefusalBoundTest(unittest.TestCase):
    def test_expired_dropped_before_the_oldest(self) -> None:
        s = ksse.kinesis_stream("orders")
        kms = FakeKMS(s.context)
        clock = FakeClock()
        d = ksse.Decryptor(kms, [FAKE_ARN], clock=clock, rate=1e9, burst=10**6)
        d.cache._max_negative = 10
        forged = []
        for _ in range(10):
            k = ksse.Key(os.urandom(32), os.urandom(100), s.ad)
            forged.append(envelope.seal(k, b"pk", b"x"))
        for f in forged:
            with self.assertRaises(ksse.OpenError):
                d.decrypt("orders", f)
        clock.advance(50)
        for f in forged[:2]:  # the two oldest, looked up: kept to 110 s
            with self.assertRaises(ksse.OpenError):
                d.decrypt("orders", f)
        clock.advance(20)  # the other eight expired
        self.assertEqual(d.stats().negative_entries, 2)
        k = ksse.Key(os.urandom(32), os.urandom(100), s.ad)
        with self.assertRaises(ksse.OpenError):
            d.decrypt("orders", envelope.seal(k, b"pk", b"x"))
        calls = kms.calls
        for f in forged[:2]:
            with self.assertRaises(ksse.OpenError):
                d.decrypt("orders", f)
        self.assertEqual(kms.calls, calls, "the looked-up refusals were kept")
        self.assertEqual(len(d.cache._negative), 3, "expired ones dropped")


if __name__ == "__main__":
    unittest.main()
