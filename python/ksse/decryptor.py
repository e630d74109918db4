"""Decryptor: authenticate and decrypt Kinesis records."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Union

from . import envelope
from .envelope import Envelope
from .errors import ClosedError, ConfigError, KsseError, NotEncryptedError, OpenError, RateLimitedError
from .keycache import DEFAULT_BURST, DEFAULT_MAX_ENTRIES, DEFAULT_RATE, DEFAULT_TTL, MISS, CacheStats, Clock, ConsumerCache, _fresh
from .stream import Stream, kinesis_stream

__all__ = ["Decrypted", "Decryptor", "Result", "MAX_NEW_KEYS_PER_BATCH", "UNWRAP_FAN_OUT"]

MAX_NEW_KEYS_PER_BATCH = 128
UNWRAP_FAN_OUT = 16


class Decrypted(NamedTuple):
    """A decrypted record.

    ``encrypted`` is False for a plaintext record passed through
    (``allow_plaintext``); its ``partition_key`` and ``key_arn`` are then
    empty. The repr shows sizes, not content.
    """

    partition_key: str
    data: bytes
    encrypted: bool
    key_arn: str

    def __repr__(self) -> str:
        return (
            f"Decrypted(partition_key=<{len(self.partition_key)} chars>, data=<{len(self.data)} bytes>, "
            f"encrypted={self.encrypted}, key_arn={self.key_arn!r})"
        )


Result = Union[Decrypted, KsseError]
"""One record's outcome in a batch: the record, or why it failed."""


class Decryptor:
    """Decrypts ksse records. Thread-safe; create one and share it.

    ``kms`` is a boto3 KMS client. ``allowed_key_arns`` lists the KMS key
    ARNs whose data keys are accepted (strict mode, the default); each is
    sent in turn as the KeyId of KMS Decrypt. Pass
    ``insecure_allow_any_key=True`` instead to accept any key the
    credentials can use. ``allow_plaintext`` passes records that are not
    envelopes through instead of failing them with NotEncryptedError.
    """

    def __init__(
        self,
        kms: Any,
        allowed_key_arns: Iterable[str] = (),
        *,
        insecure_allow_any_key: bool = False,
        allow_plaintext: bool = False,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        max_new_keys_per_batch: int = MAX_NEW_KEYS_PER_BATCH,
        unwrap_fan_out: int = UNWRAP_FAN_OUT,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_new_keys_per_batch < 1 or unwrap_fan_out < 1:
            raise ConfigError("ksse: max_new_keys_per_batch and unwrap_fan_out must be positive")
        self.cache = ConsumerCache(
            kms,
            allowed_key_arns,
            insecure_allow_any_key=insecure_allow_any_key,
            ttl=ttl,
            max_entries=max_entries,
            rate=rate,
            burst=burst,
            clock=clock,
        )
        self._allow_plaintext = allow_plaintext
        self._max_new = max_new_keys_per_batch
        self._fan_out = unwrap_fan_out
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False

    def stats(self) -> CacheStats:
        """Return the key cache's counters."""
        return self.cache.stats()

    def close(self) -> None:
        """Stop the unwrap threads and forget every key. Decrypt fails afterwards."""
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.cache.clear()

    def __enter__(self) -> Decryptor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decrypt(self, stream: str, data: envelope.Buffer) -> Decrypted:
        """Decrypt the Data of one record of the Kinesis stream (name or ARN).

        Raises OpenError (not authentic), NotEncryptedError,
        KeyNotAllowedError, a KMSError or RateLimitedError. It never returns
        unauthenticated bytes.
        """
        s = kinesis_stream(stream)
        parsed = self._parse(data)
        if isinstance(parsed, Decrypted):
            return parsed
        return self.open_envelope(s, parsed)

    def open_envelope(self, stream: Stream, env: Envelope) -> Decrypted:
        """Unwrap the data key of a parsed envelope and open it for stream."""
        self._check_open()
        key, arn = self.cache.get(env.wrapped_key, stream)
        pk, payload = envelope.open(key, env)
        try:
            pk_str = pk.decode("utf-8")
        except UnicodeDecodeError:
            raise OpenError() from None
        return Decrypted(pk_str, payload, True, arn)

    def decrypt_batch(self, stream: str, datas: Sequence[envelope.Buffer]) -> list[Result]:
        """Decrypt the Data of a batch of records of one Kinesis stream.

        The distinct new wrapped keys of the batch are unwrapped
        concurrently, at most ``max_new_keys_per_batch`` of them; records
        under further new keys fail with RateLimitedError. Then the records
        are opened in order. The result holds, for each record, its
        Decrypted or its error.
        """
        s = kinesis_stream(stream)
        return self._decrypt_batch([s] * len(datas), datas)

    def decrypt_records(self, stream: str, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[Result]:
        """Decrypt the records of a boto3 GetRecords output (or its Records list)."""
        if isinstance(records, Mapping):
            records = records.get("Records", [])
        return self.decrypt_batch(stream, [r["Data"] for r in records])

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("ksse: Decryptor is closed")

    def _parse(self, data: envelope.Buffer) -> Envelope | Decrypted:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise OpenError()
        if not envelope.is_envelope(data):
            if self._allow_plaintext:
                return Decrypted("", bytes(data), False, "")
            raise NotEncryptedError()
        return envelope.parse_one(data)

    def _decrypt_batch(self, streams: Sequence[Stream], datas: Sequence[envelope.Buffer]) -> list[Result]:
        """Decrypt datas[i] for streams[i]: the batch form behind every caller."""
        self._check_open()
        results: list[Result | None] = [None] * len(datas)
        envs: list[tuple[int, Envelope, bytes]] = []
        for i, data in enumerate(datas):
            try:
                parsed = self._parse(data)
            except KsseError as err:
                results[i] = err
                continue
            if isinstance(parsed, Decrypted):
                results[i] = parsed
            else:
                envs.append((i, parsed, parsed.wrapped_key))

        # The distinct wrapped keys that need a KMS call, in order.
        new: dict[tuple[bytes, Stream], None] = {}
        seen: set[tuple[bytes, Stream]] = set()
        for i, env, wk in envs:
            k = (wk, streams[i])
            if k not in seen:
                seen.add(k)
                if self.cache.peek(wk, streams[i]) is MISS:
                    new[k] = None
        todo = list(new)[: self._max_new]
        over = set(list(new)[self._max_new :])
        key_errs: dict[tuple[bytes, Stream], KsseError] = {}
        for k, err in zip(todo, self._unwrap_all(todo)):
            if err is not None:
                key_errs[k] = err

        for i, env, wk in envs:
            k = (wk, streams[i])
            if k in over:
                results[i] = RateLimitedError(f"ksse: more than {self._max_new} new data keys in one batch; retry later")
                continue
            err = key_errs.get(k)
            if err is None:
                try:
                    results[i] = self.open_envelope(streams[i], env)
                    continue
                except OpenError as e:
                    err = e
                except KsseError as e:
                    # A key failure: every record under this key would meet it.
                    key_errs[k] = err = e
            else:
                err = _fresh(err)  # type: ignore[assignment]
            results[i] = err
        return results  # type: ignore[return-value]

    def _unwrap_all(self, keys: list[tuple[bytes, Stream]]) -> list[KsseError | None]:
        """Unwrap keys concurrently (fan-out ``unwrap_fan_out``)."""

        def one(k: tuple[bytes, Stream]) -> KsseError | None:
            try:
                self.cache.get(k[0], k[1])
                return None
            except KsseError as err:
                return err

        if len(keys) <= 1:
            return [one(k) for k in keys]
        with self._pool_lock:
            if self._closed:
                raise ClosedError("ksse: Decryptor is closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._fan_out, thread_name_prefix="ksse-unwrap")
            pool = self._pool
        return list(pool.map(one, keys))
