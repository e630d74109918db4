"""A Lambda function that consumes a ksse-encrypted Kinesis stream.

Deploy with the ksse package, set KSSE_KEY_ARNS to the allowed KMS key
ARNs (comma-separated), point the handler at ``handler.handler`` and give
the event source mapping FunctionResponseTypes ["ReportBatchItemFailures"].
"""

import base64
import json
import logging
import os

import boto3

import ksse

log = logging.getLogger("orders")
log.setLevel(logging.INFO)

decryptor = ksse.Decryptor(boto3.client("kms"), os.environ["KSSE_KEY_ARNS"].split(","))


def process(event, context):
    """The function's own handler: it sees plaintext records."""
    totals = {}
    for record in event["Records"]:
        k = record["kinesis"]
        try:
            order = json.loads(base64.b64decode(k["data"]))
        except ValueError:
            # Lambda redelivers from here: later records would run twice.
            return {"batchItemFailures": [{"itemIdentifier": k["sequenceNumber"]}]}
        totals[k["partitionKey"]] = totals.get(k["partitionKey"], 0) + order["amount"]
    for customer, amount in sorted(totals.items()):
        log.info("orders: customer=%s amount=%.2f", customer, amount)
    return {"batchItemFailures": []}


handler = ksse.lambda_handler(decryptor, process)
