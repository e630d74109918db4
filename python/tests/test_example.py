"""examples/python_lambda/handler.py, invoked with an event of real moto records."""

from __future__ import annotations

import importlib.util
import json
import os
import unittest
from unittest import mock

import ksse

from _moto import aws_env, client, create_stream, new_key, unique
from _vectors import REPO
from test_lambda import LambdaSimulator

HANDLER = REPO / "examples" / "python_lambda" / "handler.py"


class ExampleTest(unittest.TestCase):
    def test_handler(self) -> None:
        kms, kinesis = client("kms"), client("kinesis")
        key = new_key(kms)
        stream = unique("example")
        arn = create_stream(kinesis, stream)
        enc = ksse.Encryptor(kms, key, kinesis=kinesis)
        orders = [("alice", 12.5), ("bob", 3.0), ("alice", 7.5)]
        enc.put_records(stream, [(c, json.dumps({"order": i, "amount": a}).encode()) for i, (c, a) in enumerate(orders)])
        enc.put_records(stream, [("carol", b"not json")])
        kinesis.put_record(StreamName=stream, PartitionKey="x", Data=b'{"plaintext": true}')

        env = {k: v for k, v in aws_env().items() if k.startswith("AWS_")}
        env["KSSE_KEY_ARNS"] = key
        with mock.patch.dict(os.environ, env):
            spec = importlib.util.spec_from_file_location("python_lambda_handler", HANDLER)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        self.addCleanup(module.decryptor.close)

        sim = LambdaSimulator(kinesis, stream, arn)
        event = sim.next_event()
        self.assertEqual(len(event["Records"]), 5)
        # No totals: the function stops at carol's record.
        with self.assertNoLogs("orders", "INFO"), self.assertLogs("ksse", "ERROR") as reject_log:
            resp = module.handler(event, None)
        # carol's record is the function's own failure; the plaintext record is rejected.
        self.assertEqual(resp, {"batchItemFailures": [{"itemIdentifier": event["Records"][3]["kinesis"]["sequenceNumber"]}]})
        self.assertIn("NotEncryptedError", reject_log.output[0])

        # Without the bad order, the totals come out.
        event["Records"] = event["Records"][:3]
        with self.assertLogs("orders", "INFO") as orders_log:
            resp = module.handler(event, None)
        self.assertEqual(resp, {"batchItemFailures": []})
        self.assertEqual(
            orders_log.output,
            ["INFO:orders:orders: customer=alice amount=20.00", "INFO:orders:orders: customer=bob amount=3.00"],
        )


if __name__ == "__main__":
    unittest.main()
