"""Firehose Direct PUT to S3 on moto, and the streaming object reader."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import unittest

import ksse
from ksse import envelope

from _moto import client, new_key, unique


class FirehoseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.kms = client("kms")
        cls.s3 = client("s3")
        cls.firehose = client("firehose")
        cls.key = new_key(cls.kms)
        cls.bucket = unique("ksse-firehose").lower()
        cls.s3.create_bucket(Bucket=cls.bucket)

    def setUp(self) -> None:
        self.name = unique("events")
        self.prefix = self.name + "/"
        self.firehose.create_delivery_stream(
            DeliveryStreamName=self.name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{self.bucket}",
                "Prefix": self.prefix,
            },
        )
        self.enc = ksse.Encryptor(self.kms, self.key, firehose=self.firehose)
        self.dec = ksse.Decryptor(self.kms, [self.key])
        self.addCleanup(self.dec.close)

    def objects(self) -> list[bytes]:
        keys = [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix).get("Contents", [])]
        return [self.s3.get_object(Bucket=self.bucket, Key=k)["Body"].read() for k in sorted(keys)]

    def test_round_trip_through_s3(self) -> None:
        rng = random.Random(7)
        payloads = [rng.randbytes(rng.choice([0, 1, 100, 1024, 20000])) for _ in range(40)]
        res = self.enc.put_record_batch(self.name, payloads)
        self.assertTrue(all(r.ok and r.record_id for r in res))
        keys = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)["Contents"]
        self.assertEqual(len(keys), 1)
        body = self.s3.get_object(Bucket=self.bucket, Key=keys[0]["Key"])["Body"]  # streamed
        got = list(ksse.FirehoseReader(self.dec, self.name, body))
        self.assertEqual([d.data for d in got], payloads)
        self.assertTrue(all(d.partition_key == "" and d.encrypted and d.key_arn == self.key for d in got))

    def test_tampered_record_skipped(self) -> None:
        self.enc.put_record_batch(self.name, [b"one", b"two", b"three"])
        (obj,) = self.objects()
        first = envelope.parse(obj)[0].size
        bad = bytearray(obj)
        bad[first + 40] ^= 1
        r = ksse.FirehoseReader(self.dec, self.name, io.BytesIO(bytes(bad)))
        self.assertEqual(r.read().data, b"one")
        with self.assertRaises(ksse.OpenError) as cm:
            r.read()
        self.assertNotIsInstance(cm.exception, ksse.MalformedObjectError)
        self.assertEqual((cm.exception.record_index, cm.exception.offset), (1, first))
        self.assertEqual(r.read().data, b"three")
        self.assertIsNone(r.read())

    def test_truncated_object_sticky(self) -> None:
        self.enc.put_record_batch(self.name, [b"one", b"two"])
        (obj,) = self.objects()
        r = ksse.FirehoseReader(self.dec, self.name, io.BytesIO(obj[:-1]))
        self.assertEqual(r.read().data, b"one")
        for _ in range(2):
            with self.assertRaises(ksse.MalformedObjectError):
                r.read()

    def test_kinesis_record_in_object_rejected(self) -> None:
        kinesis_env = self.enc.encrypt(self.name, "pk", b"kinesis").data
        r = ksse.FirehoseReader(self.dec, self.name, io.BytesIO(kinesis_env))
        with self.assertRaises(ksse.OpenError):
            r.read()
        firehose_env = self.enc.encrypt_firehose(self.name, b"firehose")
        with self.assertRaises(ksse.OpenError):
            self.dec.decrypt(self.name, firehose_env)

    def test_memory_follows_bytes_not_claims(self) -> None:
        header = envelope.MAGIC + struct.pack(">HI", 6144, envelope.MAX_BODY) + bytes(16)
        data = header + bytes(1000)
        tracemalloc.start()
        try:
            r = ksse.FirehoseReader(self.dec, self.name, io.BytesIO(data))
            with self.assertRaises(ksse.MalformedObjectError):
                r.read()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 512 << 10, "the reader allocated for the claimed length")


if __name__ == "__main__":
    unittest.main()
