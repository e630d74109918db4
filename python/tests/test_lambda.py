"""The Lambda helper against moto records, with Lambda's redelivery simulated."""

from __future__ import annotations

import base64
import logging
import unittest
from typing import Any

import ksse

from _moto import CountingKMS, client, create_stream, new_key, unique


def event_record(stream_arn: str, shard_id: str, r: dict[str, Any]) -> dict[str, Any]:
    """A Kinesis event record as Lambda gives it."""
    seq = r["SequenceNumber"]
    return {
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{seq}",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": stream_arn,
        "awsRegion": "us-east-1",
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r["PartitionKey"],
            "sequenceNumber": seq,
            "data": base64.b64encode(r["Data"]).decode(),
            "approximateArrivalTimestamp": r["ApproximateArrivalTimestamp"].timestamp(),
        },
    }


class LambdaSimulator:
    """Lambda's Kinesis event source: batches from each shard's checkpoint.

    After an invocation, a shard whose record was reported in
    batchItemFailures restarts at that record; the others go on after their
    last record.
    """

    def __init__(self, kinesis: Any, stream: str, stream_arn: str, batch_size: int = 100) -> None:
        self.kinesis, self.stream, self.arn, self.batch_size = kinesis, stream, stream_arn, batch_size
        self.shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
        self.position: dict[str, tuple[str, str | None]] = {s: ("TRIM_HORIZON", None) for s in self.shards}
        self.invocations = 0

    def next_event(self, shards: list[str] | None = None) -> dict[str, Any]:
        """The next batch of the given shards (default: all), in one event."""
        records = []
        for shard in shards or self.shards:
            kind, seq = self.position[shard]
            kw = {"StartingSequenceNumber": seq} if seq else {}
            it = self.kinesis.get_shard_iterator(StreamName=self.stream, ShardId=shard, ShardIteratorType=kind, **kw)
            res = self.kinesis.get_records(ShardIterator=it["ShardIterator"], Limit=self.batch_size)
            records += [event_record(self.arn, shard, r) for r in res["Records"]]
        return {"Records": records}

    def invoke(self, handler: Any) -> list[dict[str, Any]]:
        """Invoke handler once per shard that has records, as Lambda does.

        (moto numbers records per shard, so an itemIdentifier names a
        record only within its shard's batch.)
        """
        responses = []
        for shard in self.shards:
            event = self.next_event([shard])
            if not event["Records"]:
                continue
            self.invocations += 1
            resp = handler(event, None)
            responses.append(resp)
            failed = [f["itemIdentifier"] for f in resp["batchItemFailures"]]
            seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
            if failed:
                # Lambda restarts at the lowest sequence number reported.
                self.position[shard] = ("AT_SEQUENCE_NUMBER", min(failed, key=int))
            else:
                self.position[shard] = ("AFTER_SEQUENCE_NUMBER", seqs[-1])
        return responses


class LambdaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.kms = client("kms")
        cls.kinesis = client("kinesis")
        cls.key_a = new_key(cls.kms)
        cls.key_b = new_key(cls.kms)

    def setUp(self) -> None:
        self.stream = unique("lambda")
        self.arn = create_stream(self.kinesis, self.stream, shards=2)
        self.enc_a = ksse.Encryptor(self.kms, self.key_a, kinesis=self.kinesis)
        self.enc_b = ksse.Encryptor(self.kms, self.key_b, kinesis=self.kinesis)

    def put(self, enc: ksse.Encryptor, pk: str, data: bytes) -> None:
        res = enc.put_records(self.stream, [(pk, data)])
        self.assertTrue(res[0].ok, res[0])

    def put_raw(self, pk: str, data: bytes) -> None:
        self.kinesis.put_record(StreamName=self.stream, PartitionKey=pk, Data=data)

    def test_redelivery(self) -> None:
        """Good records reach the handler once each, in order; bad ones are rejected once; a transient failure is redelivered."""
        expected: dict[str, list[bytes]] = {}  # by plaintext partition key: payloads in order
        bad: dict[bytes, type] = {}
        other = ksse.Encryptor(self.kms, self.key_a).encrypt("another-stream", "user-1", b"moved").data
        for i in range(16):
            pk = f"user-{i % 4}"
            if i == 3:
                d = self.enc_a.encrypt(self.stream, pk, b"tampered").data
                d = d[:40] + bytes([d[40] ^ 1]) + d[41:]
                self.put_raw("x", d)
                bad[d] = ksse.OpenError
                continue
            if i == 7:
                self.put_raw("plain", b'{"plaintext":true}')
                bad[b'{"plaintext":true}'] = ksse.NotEncryptedError
                continue
            if i == 11:
                self.put_raw("moved", other)
                bad[other] = ksse.OpenError
                continue
            payload = f"rec-{i}".encode()
            self.put(self.enc_b if i in (5, 13) else self.enc_a, pk, payload)
            expected.setdefault(pk, []).append(payload)

        counting = CountingKMS(self.kms)
        wrapped_b = {ksse.parse_one(self.enc_b.encrypt(self.stream, "p", b"").data).wrapped_key}
        counting.faults = ["ThrottlingException"]
        counting.fault_if = lambda p: p["CiphertextBlob"] in wrapped_b
        dec = ksse.Decryptor(counting, [self.key_a, self.key_b])
        self.addCleanup(dec.close)

        seen: dict[str, list[bytes]] = {}
        rejected: list[tuple[bytes, ksse.KsseError]] = []

        def fn(event: dict[str, Any], context: Any) -> dict[str, Any]:
            for r in event["Records"]:
                k = r["kinesis"]
                self.assertEqual(k["encryptionType"], "KMS")
                seen.setdefault(k["partitionKey"], []).append(base64.b64decode(k["data"]))
            return {}

        def on_reject(record: dict[str, Any], err: ksse.KsseError) -> None:
            rejected.append((base64.b64decode(record["kinesis"]["data"]), err))

        handler = ksse.lambda_handler(dec, fn, on_reject=on_reject)
        sim = LambdaSimulator(self.kinesis, self.stream, self.arn)
        rounds = []
        while responses := sim.invoke(handler):
            rounds.append(responses)
            self.assertLess(len(rounds), 5)
        self.assertEqual(seen, expected)
        self.assertEqual(len(rejected), len(bad))
        for data, err in rejected:
            self.assertIs(type(err), bad[data])
        failures = [f for resp in rounds[0] for f in resp["batchItemFailures"]]
        self.assertEqual(len(failures), 1, "the first key-B record, in its shard")
        self.assertEqual(len(rounds), 2, "one redelivery")
        self.assertEqual([r["batchItemFailures"] for r in rounds[1]], [[]] * len(rounds[1]))
        self.assertFalse(counting.faults, "the injected throttle happened")

    def test_shards_independent(self) -> None:
        """In an event of two shards, a transient failure withholds only its own shard's rest."""
        for i in range(12):
            self.put(self.enc_b if i == 6 else self.enc_a, f"user-{i % 4}", f"rec-{i}".encode())
        sim = LambdaSimulator(self.kinesis, self.stream, self.arn)
        event = sim.next_event()
        self.assertEqual({r["eventID"].split(":")[0] for r in event["Records"]}, set(sim.shards))
        counting = CountingKMS(self.kms)
        counting.faults = ["ThrottlingException"]
        wrapped_b = ksse.parse_one(self.enc_b.encrypt(self.stream, "p", b"").data).wrapped_key
        counting.fault_if = lambda p: p["CiphertextBlob"] == wrapped_b
        dec = ksse.Decryptor(counting, [self.key_a, self.key_b])
        self.addCleanup(dec.close)
        got: list[str] = []
        resp = ksse.lambda_handler(dec, lambda e, c: got.extend(r["eventID"] for r in e["Records"]))(event, None)
        b_rec = next(r for r in event["Records"] if base64.b64decode(r["kinesis"]["data"]).startswith(b"\xe5KS")
                     and ksse.parse_one(base64.b64decode(r["kinesis"]["data"])).wrapped_key == wrapped_b)
        b_shard = b_rec["eventID"].split(":")[0]
        want = []
        withheld = False
        for r in event["Records"]:
            if r is b_rec:
                withheld = True
            if not (withheld and r["eventID"].startswith(b_shard + ":")):
                want.append(r["eventID"])
        self.assertEqual(got, want)
        self.assertEqual(resp["batchItemFailures"], [{"itemIdentifier": b_rec["kinesis"]["sequenceNumber"]}])

    def test_default_reject_logs_without_content(self) -> None:
        self.put_raw("plain", b"secret plaintext")
        dec = ksse.Decryptor(self.kms, [self.key_a])
        self.addCleanup(dec.close)
        calls = []
        handler = ksse.lambda_handler(dec, lambda e, c: calls.append(e))
        sim = LambdaSimulator(self.kinesis, self.stream, self.arn)
        event = sim.next_event()
        with self.assertLogs("ksse", level="ERROR") as logs:
            resp = handler(event, None)
        self.assertEqual(resp, {"batchItemFailures": []})
        self.assertEqual(calls, [], "the handler is not called without records")
        rec = event["Records"][0]
        self.assertEqual(len(logs.output), 1)
        self.assertIn(rec["eventID"], logs.output[0])
        self.assertIn(rec["kinesis"]["sequenceNumber"], logs.output[0])
        self.assertIn("NotEncryptedError", logs.output[0])
        self.assertNotIn("secret", logs.output[0])
        self.assertNotIn(rec["kinesis"]["data"], logs.output[0])

    def test_handler_failures_merged(self) -> None:
        for i in range(3):
            self.put(self.enc_a, "same", f"r{i}".encode())
        counting = CountingKMS(self.kms)
        dec = ksse.Decryptor(counting, [self.key_a])
        self.addCleanup(dec.close)

        def fn(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["kinesis"]["sequenceNumber"]}]}

        sim = LambdaSimulator(self.kinesis, self.stream, self.arn)
        event = sim.next_event()
        resp = ksse.lambda_handler(dec, fn)(event, None)
        self.assertEqual(resp["batchItemFailures"], [{"itemIdentifier": event["Records"][1]["kinesis"]["sequenceNumber"]}])
        # A transient failure of the first record withholds the whole shard.
        dec2 = ksse.Decryptor(counting, [self.key_a])
        self.addCleanup(dec2.close)
        counting.faults = ["ThrottlingException"]
        calls = []
        resp = ksse.lambda_handler(dec2, lambda e, c: calls.append(e))(event, None)
        self.assertEqual(resp["batchItemFailures"], [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}])
        self.assertEqual(calls, [])


if __name__ == "__main__":
    logging.basicConfig()
    unittest.main()
