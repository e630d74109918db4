"""Stream identity: the associated data and KMS encryption context."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import InvalidStreamError

__all__ = ["Stream", "kinesis_stream", "firehose_stream", "CONTEXT_KEY_KINESIS", "CONTEXT_KEY_FIREHOSE"]

CONTEXT_KEY_KINESIS = "kinesis:stream"
CONTEXT_KEY_FIREHOSE = "firehose:deliverystream"
_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,128}")


@dataclass(frozen=True, slots=True)
class Stream:
    """A Kinesis data stream or a Firehose delivery stream, by kind and name."""

    kind: str  # "kinesis" or "firehose"
    name: str
    ad: bytes = field(init=False, repr=False, compare=False)
    """The envelope associated data: ``kind:name``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ad", f"{self.kind}:{self.name}".encode())

    @property
    def context(self) -> dict[str, str]:
        """The KMS encryption context of the stream's data keys."""
        key = CONTEXT_KEY_FIREHOSE if self.kind == "firehose" else CONTEXT_KEY_KINESIS
        return {key: self.name}

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@lru_cache(maxsize=4096)
def kinesis_stream(name_or_arn: str) -> Stream:
    """Return the Stream of a Kinesis stream name or ARN.

    An ARN ``arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME`` and the ARN
    of an enhanced fan-out consumer (``…/stream/NAME/consumer/C:T``) give
    NAME.
    """
    s = name_or_arn
    if s.startswith("arn:"):
        i = s.find("/consumer/")
        if i > 0:
            s = s[:i]
    return _parse("kinesis", "stream/", s, name_or_arn)


@lru_cache(maxsize=4096)
def firehose_stream(name_or_arn: str) -> Stream:
    """Return the Stream of a Firehose delivery stream name or ARN."""
    return _parse("firehose", "deliverystream/", name_or_arn, name_or_arn)


def _parse(kind: str, resource: str, s: str, given: str) -> Stream:
    if not isinstance(s, str):
        raise InvalidStreamError("ksse: stream must be a str")
    name = s
    if s.startswith("arn:"):
        parts = s.split(":", 5)
        if len(parts) != 6 or parts[2] != kind or not parts[5].startswith(resource):
            raise InvalidStreamError(f"ksse: {given!r} is not a {kind} stream ARN")
        name = parts[5][len(resource) :]
    if not _NAME.fullmatch(name):
        raise InvalidStreamError(f"ksse: invalid stream name {given!r} (want 1 to 128 of a-z, A-Z, 0-9, _ . -)")
    return Stream(kind, name)
