"""ksse: client-side encryption of Kinesis and Firehose records.

Python implementation of the ksse envelope (FORMAT.md) and of the consumer
policy shared with the Go library: strict KMS key allowlist by default,
bounded key caches, and fail-closed decryption that never returns
unauthenticated bytes.
"""

from __future__ import annotations

from . import envelope
from .awslambda import decrypt_event, lambda_handler, log_reject
from .decryptor import Decrypted, Decryptor, Result
from .encryptor import OUTBOUND_PARTITION_KEY, Encrypted, Encryptor, PutResult, explicit_hash_key
from .envelope import Envelope, Key, is_envelope, open, parse, parse_one, seal
from . import errors
from .errors import *  # noqa: F401,F403  (every error type, listed in errors.__all__)
from .firehose import FirehoseReader
from .keycache import CacheStats, ConsumerCache, ProducerCache
from .stream import Stream, firehose_stream, kinesis_stream

__version__ = "0.1.0"

__all__ = [
    "envelope",
    "Envelope",
    "Key",
    "is_envelope",
    "open",
    "parse",
    "parse_one",
    "seal",
    "Decrypted",
    "Decryptor",
    "Result",
    "Encrypted",
    "Encryptor",
    "PutResult",
    "OUTBOUND_PARTITION_KEY",
    "explicit_hash_key",
    "FirehoseReader",
    "lambda_handler",
    "decrypt_event",
    "log_reject",
    "CacheStats",
    "ConsumerCache",
    "ProducerCache",
    "Stream",
    "kinesis_stream",
    "firehose_stream",
]
__all__ += errors.__all__
