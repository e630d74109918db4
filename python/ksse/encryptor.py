"""Encryptor: seal records and send them to Kinesis or Firehose with boto3."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from . import envelope
from .errors import ConfigError, InvalidPartitionKeyError, RecordTooLargeError
from .keycache import DEFAULT_TTL, CacheStats, Clock, ProducerCache
from .stream import Stream, firehose_stream, kinesis_stream

__all__ = [
    "Encryptor",
    "Encrypted",
    "PutResult",
    "OUTBOUND_PARTITION_KEY",
    "MAX_PUT_RECORDS",
    "KINESIS_MAX_RECORD_SIZE",
    "FIREHOSE_MAX_RECORD_SIZE",
    "explicit_hash_key",
]

OUTBOUND_PARTITION_KEY = "ksse"
"""The partition key every encrypted record carries on the wire."""
MAX_PUT_RECORDS = 500
KINESIS_MAX_RECORD_SIZE = 1 << 20
"""Data plus partition key, the default Kinesis record limit."""
FIREHOSE_MAX_RECORD_SIZE = 1000 << 10
FIREHOSE_MAX_BATCH = 500
MAX_PARTITION_KEY_CHARS = 256

RecordInput = Union[tuple[str, bytes], Mapping[str, Any]]


def explicit_hash_key(partition_key: str) -> str:
    """Return the Kinesis hash key of a partition key, in decimal.

    It is MD5 of the UTF-8 bytes read as a 128-bit big-endian integer: the
    shard the plaintext record would go to. MD5 is Kinesis's routing
    function here, not a security primitive.
    """
    digest = hashlib.md5(partition_key.encode("utf-8"), usedforsecurity=False).digest()
    return str(int.from_bytes(digest, "big"))


@dataclass(frozen=True, slots=True)
class Encrypted:
    """An encrypted record as it goes on the wire."""

    data: bytes
    partition_key: str
    explicit_hash_key: str

    def __repr__(self) -> str:
        return f"Encrypted(data=<{len(self.data)} bytes>, partition_key={self.partition_key!r})"


@dataclass(frozen=True, slots=True)
class PutResult:
    """The outcome of one entry of a PutRecords (or PutRecordBatch) call.

    ``error_code`` is None for an accepted entry.
    """

    index: int
    sequence_number: str | None = None
    shard_id: str | None = None
    record_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the entry was accepted."""
        return self.error_code is None


def _check_partition_key(pk: str) -> None:
    if not isinstance(pk, str) or not pk:
        raise InvalidPartitionKeyError("ksse: partition key must be a non-empty str")
    if len(pk) > MAX_PARTITION_KEY_CHARS:
        raise InvalidPartitionKeyError(f"ksse: partition key of {len(pk)} characters, more than {MAX_PARTITION_KEY_CHARS}")
    try:
        pk.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPartitionKeyError("ksse: partition key is not valid Unicode") from None


def _stream_params(stream: str, s: Stream, name_key: str, arn_key: str) -> dict[str, str]:
    return {arn_key: stream} if stream.startswith("arn:") else {name_key: s.name}


class Encryptor:
    """Encrypts records under data keys of one KMS key. Thread-safe.

    ``kms`` is a boto3 KMS client; ``key_id`` a key ID, key ARN, alias name
    or alias ARN. One GenerateDataKey per stream is cached for ``ttl``
    seconds (5 minutes).
    """

    def __init__(
        self,
        kms: Any,
        key_id: str,
        *,
        kinesis: Any = None,
        firehose: Any = None,
        ttl: float = DEFAULT_TTL,
        max_record_size: int = KINESIS_MAX_RECORD_SIZE,
        clock: Clock = time.monotonic,
    ) -> None:
        self._cache = ProducerCache(kms, key_id, ttl=ttl, clock=clock)
        self._kinesis = kinesis
        self._firehose = firehose
        self._max_record_size = max_record_size

    def stats(self) -> CacheStats:
        """Return the data key cache's counters."""
        return self._cache.stats()

    def seal(self, stream: Stream, partition_key: str, data: envelope.Buffer, limit: int, overhead: int = 0) -> bytes:
        """Return the envelope of one record for stream, within limit bytes."""
        pk = partition_key.encode("utf-8")
        if envelope.OVERHEAD + len(pk) + len(data) + 1 + overhead > limit:
            raise RecordTooLargeError(f"ksse: record over {limit} bytes once encrypted")
        key = self._cache.get(stream)
        if key.sealed_size(len(pk), len(data)) + overhead > limit:
            raise RecordTooLargeError(f"ksse: record over {limit} bytes once encrypted")
        return envelope.seal(key, pk, data)

    def encrypt(self, stream: str, partition_key: str, data: envelope.Buffer) -> Encrypted:
        """Encrypt one record for the Kinesis stream (name or ARN)."""
        s = kinesis_stream(stream)
        _check_partition_key(partition_key)
        env = self.seal(s, partition_key, data, self._max_record_size, len(OUTBOUND_PARTITION_KEY))
        return Encrypted(env, OUTBOUND_PARTITION_KEY, explicit_hash_key(partition_key))

    def put_records(self, stream: str, records: Sequence[RecordInput], kinesis: Any = None) -> list[PutResult]:
        """Encrypt records and send them with one Kinesis PutRecords call.

        records are (partition key, data) pairs or PutRecords entries
        (``{"PartitionKey": ..., "Data": ...}``), at most 500. Every record is
        encrypted before anything is sent: if one fails, its error is raised
        and nothing is sent. The result has one PutResult per record, in
        order; entries Kinesis rejected carry its error code, to retry. A
        failed call raises the boto3 exception.
        """
        client = kinesis or self._kinesis
        if client is None:
            raise ConfigError("ksse: no Kinesis client")
        if not 1 <= len(records) <= MAX_PUT_RECORDS:
            raise ConfigError(f"ksse: PutRecords takes 1 to {MAX_PUT_RECORDS} records, got {len(records)}")
        s = kinesis_stream(stream)
        entries = []
        for r in records:
            pk, data = (r["PartitionKey"], r["Data"]) if isinstance(r, Mapping) else r
            if isinstance(data, str):
                data = data.encode("utf-8")
            e = self.encrypt(stream, pk, data)
            entries.append({"Data": e.data, "PartitionKey": e.partition_key, "ExplicitHashKey": e.explicit_hash_key})
        out = client.put_records(Records=entries, **_stream_params(stream, s, "StreamName", "StreamARN"))
        return [
            PutResult(
                index=i,
                sequence_number=r.get("SequenceNumber"),
                shard_id=r.get("ShardId"),
                error_code=r.get("ErrorCode"),
                error_message=r.get("ErrorMessage"),
            )
            for i, r in enumerate(out.get("Records", []))
        ]

    def encrypt_firehose(self, delivery_stream: str, data: envelope.Buffer) -> bytes:
        """Return the envelope of one Firehose record (no partition key)."""
        s = firehose_stream(delivery_stream)
        return self.seal(s, "", data, FIREHOSE_MAX_RECORD_SIZE)

    def put_record_batch(self, delivery_stream: str, records: Sequence[bytes], firehose: Any = None) -> list[PutResult]:
        """Encrypt records and send them with one Firehose PutRecordBatch call.

        As put_records: nothing is sent if a record fails to encrypt, and
        the result has one PutResult per record.
        """
        client = firehose or self._firehose
        if client is None:
            raise ConfigError("ksse: no Firehose client")
        if not 1 <= len(records) <= FIREHOSE_MAX_BATCH:
            raise ConfigError(f"ksse: PutRecordBatch takes 1 to {FIREHOSE_MAX_BATCH} records, got {len(records)}")
        s = firehose_stream(delivery_stream)
        entries = [{"Data": self.encrypt_firehose(delivery_stream, d)} for d in records]
        out = client.put_record_batch(DeliveryStreamName=s.name, Records=entries)
        return [
            PutResult(
                index=i,
                record_id=r.get("RecordId"),
                error_code=r.get("ErrorCode"),
                error_message=r.get("ErrorMessage"),
            )
            for i, r in enumerate(out.get("RequestResponses", []))
        ]
