"""Lambda helper for Kinesis event sources with ReportBatchItemFailures.

Policy (CONSUMER-POLICY.md): records are grouped by shard. In each shard,
in order, a record that decrypts goes to the handler; a permanent failure
goes to ``on_reject`` and is neither withheld nor reported; the first
transient failure is reported in ``batchItemFailures`` and it and every
later record of its shard are withheld, so that Lambda delivers them again
from there.
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .decryptor import Decrypted, Decryptor
from .errors import KsseError, is_permanent
from .stream import Stream, kinesis_stream

__all__ = ["lambda_handler", "decrypt_event", "log_reject"]

logger = logging.getLogger("ksse")

Record = dict[str, Any]
RejectHook = Callable[[Record, KsseError], None]
Handler = Callable[[dict[str, Any], Any], Any]


def log_reject(record: Record, error: KsseError) -> None:
    """The default on_reject hook: log at ERROR, without record content."""
    kinesis = record.get("kinesis", {})
    logger.error(
        "ksse: record rejected: eventID=%s sequenceNumber=%s reason=%s: %s",
        record.get("eventID"),
        kinesis.get("sequenceNumber"),
        type(error).__name__,
        error,
    )


def _shard(record: Mapping[str, Any]) -> str:
    return f"{record.get('eventSourceARN', '')} {str(record.get('eventID', '')).split(':', 1)[0]}"


def _data(record: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(record["kinesis"]["data"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return b""  # fails as not encrypted (or as an empty plaintext record)


def decrypt_event(
    decryptor: Decryptor, event: Mapping[str, Any], on_reject: RejectHook | None = None
) -> tuple[list[Record], list[dict[str, str]]]:
    """Decrypt a Kinesis event by the policy; return (records, failures).

    records are copies of the event's records to hand to the handler, with
    ``kinesis.data`` the base64 of the plaintext, ``kinesis.partitionKey``
    the plaintext partition key and ``kinesis.encryptionType`` "KMS".
    failures are the ``batchItemFailures`` entries. The event is not
    modified.
    """
    reject = on_reject or log_reject
    records = list(event.get("Records") or [])
    streams: list[Stream] = []
    early: dict[int, KsseError] = {}
    for i, r in enumerate(records):
        try:
            streams.append(kinesis_stream(str(r.get("eventSourceARN", ""))))
        except KsseError as err:
            streams.append(Stream("kinesis", "-"))  # placeholder; the record fails with err
            early[i] = err
    datas = [b"" if i in early else _data(r) for i, r in enumerate(records)]
    results = decryptor._decrypt_batch(streams, datas)
    for i, err in early.items():
        results[i] = err

    out: list[Record] = []
    failures: list[dict[str, str]] = []
    withheld: set[str] = set()
    for r, res in zip(records, results):
        shard = _shard(r)
        if shard in withheld:
            continue
        if isinstance(res, Decrypted):
            out.append(_replace(r, res))
        elif is_permanent(res):
            reject(r, res)
        else:
            withheld.add(shard)
            failures.append({"itemIdentifier": str(r.get("kinesis", {}).get("sequenceNumber", ""))})
    return out, failures


def _replace(record: Record, d: Decrypted) -> Record:
    r = copy.copy(record)
    k = dict(r.get("kinesis", {}))
    if d.encrypted:
        k["data"] = base64.b64encode(d.data).decode("ascii")
        k["partitionKey"] = d.partition_key
        k["encryptionType"] = "KMS"
    else:
        k["encryptionType"] = "NONE"
    r["kinesis"] = k
    return r


def lambda_handler(decryptor: Decryptor, fn: Handler, on_reject: RejectHook | None = None) -> Handler:
    """Wrap fn, a Kinesis handler ``(event, context)``, to see plaintext.

    fn gets the event with the records to process, decrypted (it is not
    called when none is left). The response is fn's, with the batch item
    failures of the records withheld added. An exception from fn or from
    on_reject propagates: Lambda then retries the whole batch. The event
    source mapping must report batch item failures
    (FunctionResponseTypes ["ReportBatchItemFailures"]).
    """
    if decryptor is None or not callable(fn):
        raise TypeError("ksse: lambda_handler needs a Decryptor and a callable")

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        records, failures = decrypt_event(decryptor, event, on_reject)
        resp: Any = None
        if records:
            resp = fn({**event, "Records": records}, context)
        result = dict(resp) if isinstance(resp, Mapping) else {}
        result["batchItemFailures"] = list(result.get("batchItemFailures") or []) + failures
        return result

    return handler


