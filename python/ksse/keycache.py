"""Data key caches: unwrapped keys for consumers, data keys for producers.

The consumer cache follows CONSUMER-POLICY.md, with the consumer rules of
the Go library: entries live 5 minutes from creation in a bounded LRU;
concurrent misses for one (wrapped key, ad) share one KMS Decrypt, which
names each allowed key in turn as its KeyId; permanent failures are
remembered in their own bounded set, for 60 s after their last lookup and
at most 10 minutes; KMS calls on misses are rate limited by a token bucket
that fails at once when empty.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .envelope import DATA_KEY_SIZE, Key
from .errors import (
    ConfigError,
    KeyNotAllowedError,
    KMSAccessDeniedError,
    KMSDisabledError,
    KMSError,
    KMSInvalidKeyUsageError,
    KMSInvalidStateError,
    KMSNotFoundError,
    KMSThrottlingError,
    KMSUnusableKeyError,
    KsseError,
    OpenError,
    RateLimitedError,
    is_permanent,
)
from .stream import Stream

__all__ = [
    "ConsumerCache",
    "ProducerCache",
    "TokenBucket",
    "CacheStats",
    "classify_kms_error",
    "check_key_arns",
    "same_key",
]

Clock = Callable[[], float]

DEFAULT_TTL = 300.0
DEFAULT_MAX_ENTRIES = 10_000
NEGATIVE_TTL = 60.0
DEFAULT_MAX_NEGATIVE = 10_000
MAX_NEGATIVE_LIFETIMES = 10
"""Lookups extend a refusal up to this many negative TTLs after it."""
MAX_ERROR_MESSAGE = 256
DEFAULT_RATE = 50.0
DEFAULT_BURST = 256
MAX_RECORDS_PER_KEY = 1 << 32

_KEY_ARN = re.compile(r"arn:[a-z0-9-]+:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")

_CODES: dict[str, type[KMSError]] = {}
for _cls, _codes in (
    (KMSAccessDeniedError, ("AccessDeniedException", "AccessDenied", "KMSAccessDeniedException", "UnauthorizedOperation")),
    (KMSDisabledError, ("DisabledException", "KMSDisabledException")),
    (KMSInvalidStateError, ("KMSInvalidStateException",)),
    (KMSNotFoundError, ("NotFoundException", "KMSNotFoundException")),
    (KMSInvalidKeyUsageError, ("InvalidKeyUsageException",)),
    (
        KMSThrottlingError,
        (
            "ThrottlingException",
            "Throttling",
            "ThrottledException",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "KMSThrottlingException",
        ),
    ),
):
    for _code in _codes:
        _CODES[_code] = _cls


def classify_kms_error(op: str, exc: BaseException) -> KMSError:
    """Return the KMSError for an exception of a boto3 KMS call."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", ""))[:200]
        return _CODES.get(code, KMSError)(op, code, message)
    if isinstance(exc, BotoCoreError):
        return KMSError(op, "", type(exc).__name__)
    return KMSError(op, "", f"unexpected {type(exc).__name__}")


def _mrk_parts(arn: str) -> tuple[str, str] | None:
    """The (partition:account, key ID) of a multi-Region key ARN, else None."""
    f = arn.split(":", 5)
    if len(f) != 6 or f[0] != "arn" or f[2] != "kms" or not f[5].startswith("key/mrk-"):
        return None
    return f"{f[1]}:{f[4]}", f[5][len("key/") :]


def same_key(a: str, b: str) -> bool:
    """Report whether the key ARNs a and b name the same KMS key.

    They are equal, or both name one multi-Region key ("key/mrk-...") in one
    partition and account, in any two Regions: replicas share key material,
    and KMS names the replica of its own Region.
    """
    if a == b:
        return True
    pa = _mrk_parts(a)
    return pa is not None and pa == _mrk_parts(b)


def _client_region(kms: Any) -> str:
    """The Region of a boto3 client (client.meta.region_name), or ""."""
    region = getattr(getattr(kms, "meta", None), "region_name", None)
    return region if isinstance(region, str) else ""


def _of_other_key(exc: BaseException) -> bool:
    """Report whether exc, the answer to a Decrypt with a KeyId, says that
    the wrapped key is of another key: IncorrectKeyException, or an
    AccessDenied about the ciphertext or without a message (moto's answer).
    An AccessDenied of a key policy or IAM names the caller and the key."""
    if not isinstance(exc, ClientError):
        return False
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    if code == "IncorrectKeyException":
        return True
    if _CODES.get(code) is not KMSAccessDeniedError:
        return False
    msg = str(err.get("Message") or "")
    return msg in ("", "UnknownError") or "ciphertext refers to" in msg


_ABOUT_KEY = (KMSAccessDeniedError, KMSDisabledError, KMSInvalidStateError, KMSNotFoundError)


class _OtherKey(Exception):
    """KMS said the wrapped key is not of the KeyId given."""


def check_key_arns(allowed_key_arns: Iterable[str], insecure_allow_any_key: bool) -> tuple[str, ...]:
    """Validate a key allowlist: key ARNs, or none with the explicit opt-out."""
    if isinstance(allowed_key_arns, (str, bytes)):
        raise ConfigError("ksse: allowed_key_arns must be a list of KMS key ARNs, not one string")
    arns = tuple(allowed_key_arns)
    for arn in arns:
        if not isinstance(arn, str) or not _KEY_ARN.fullmatch(arn):
            raise ConfigError(
                f"ksse: {arn!r} is not a KMS key ARN; give the key ARN "
                "(arn:<partition>:kms:<region>:<account>:key/<key-id>), as KMS reports it, "
                "not a key ID or an alias"
            )
    if insecure_allow_any_key and arns:
        raise ConfigError("ksse: insecure_allow_any_key=True contradicts a non-empty allowlist")
    if not arns and not insecure_allow_any_key:
        raise ConfigError(
            "ksse: no allowed KMS key ARNs; pass allowed_key_arns=[...], "
            "or insecure_allow_any_key=True to accept any key the credentials can use"
        )
    return arns


class TokenBucket:
    """A token bucket: rate tokens a second, at most burst. Never waits."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("ksse: rate must be positive and burst at least 1")
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take one token if there is one."""
        with self._lock:
            now = self._clock()
            if now > self._last:
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
                self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            return False


@dataclass
class CacheStats:
    """Counters of a cache."""

    hits: int = 0
    misses: int = 0
    kms_calls: int = 0
    evictions: int = 0
    negative_hits: int = 0
    rate_limited: int = 0
    entries: int = 0
    negative_entries: int = 0


class _Refusal:
    __slots__ = ("expires", "deadline", "err")

    def __init__(self, expires: float, deadline: float, err: BaseException) -> None:
        self.expires, self.deadline, self.err = expires, deadline, err


def _compact(err: BaseException) -> BaseException:
    """A copy of err without traceback, cause or context (which hold the
    SDK's exception, its request and response) and with a short message."""
    c = _fresh(err)
    c.__traceback__ = c.__cause__ = c.__context__ = None
    if isinstance(c, KMSError) and len(c.message) > MAX_ERROR_MESSAGE:
        c.message = c.message[:MAX_ERROR_MESSAGE]
        c.args = (c.op, c.code, c.message)
    elif not isinstance(c, KMSError) and any(isinstance(a, str) and len(a) > MAX_ERROR_MESSAGE for a in c.args):
        c.args = tuple(a[:MAX_ERROR_MESSAGE] if isinstance(a, str) else a for a in c.args)
    return c


class _Entry:
    __slots__ = ("key", "arn", "created")

    def __init__(self, key: Key, arn: str, created: float) -> None:
        self.key, self.arn, self.created = key, arn, created


def _fresh(err: BaseException) -> BaseException:
    """A new instance of err, so that raising it again in another thread
    shares no traceback."""
    try:
        return copy.copy(err)
    except Exception:  # pragma: no cover - every ksse error copies
        return err


MISS = object()
"""What ConsumerCache.peek returns when a KMS call would be needed."""


class ConsumerCache:
    """Unwrapped data keys by (wrapped key, associated data).

    Thread-safe. ``kms`` is a boto3 KMS client (or anything with its
    ``decrypt`` method). The clock returns seconds and is injectable.
    """

    def __init__(
        self,
        kms: Any,
        allowed_key_arns: Iterable[str] = (),
        *,
        insecure_allow_any_key: bool = False,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        negative_ttl: float = NEGATIVE_TTL,
        max_negative: int = DEFAULT_MAX_NEGATIVE,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        clock: Clock = time.monotonic,
    ) -> None:
        if kms is None:
            raise ConfigError("ksse: a KMS client is required")
        if ttl <= 0 or max_entries < 1 or negative_ttl < 0 or max_negative < 1:
            raise ConfigError("ksse: ttl and the cache bounds must be positive")
        self._kms = kms
        self._allowed = check_key_arns(allowed_key_arns, insecure_allow_any_key)
        # Each allowed key is pinned in turn; replicas of one key are one.
        self._pinned: list[str] = []
        for arn in self._allowed:
            if not any(same_key(p, arn) for p in self._pinned):
                self._pinned.append(arn)
        self._region = _client_region(kms)
        self._ttl = ttl
        self._max_entries = max_entries
        self._negative_ttl = negative_ttl
        self._max_negative = max_negative
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[bytes, bytes], _Entry] = OrderedDict()
        self._negative: OrderedDict[bytes, _Refusal] = OrderedDict()  # in order of refusal
        self._inflight: dict[tuple[bytes, bytes], Future[tuple[Key, str]]] = {}
        self._stats = CacheStats()

    @property
    def allowed_key_arns(self) -> tuple[str, ...]:
        """The allowlist (empty with insecure_allow_any_key)."""
        return self._allowed

    def stats(self) -> CacheStats:
        """Return a copy of the counters."""
        with self._lock:
            s = copy.copy(self._stats)
            now = self._clock()
            s.entries = len(self._entries)
            s.negative_entries = sum(1 for f in self._negative.values() if now < f.expires)
            return s

    @staticmethod
    def _negative_id(wrapped_key: bytes, ad: bytes) -> bytes:
        return hashlib.sha256(ad + b"\x00" + wrapped_key).digest()

    def peek(self, wrapped_key: bytes, stream: Stream) -> object:
        """Return the cached (key, arn), a remembered error, or MISS. No KMS call."""
        ad = stream.ad
        now = self._clock()
        with self._lock:
            e = self._entries.get((wrapped_key, ad))
            if e is not None and now - e.created < self._ttl:
                return e.key, e.arn
            neg = self._refusal(self._negative_id(wrapped_key, ad), now)
            if neg is not None:
                return _fresh(neg)
            return MISS

    def _refusal(self, nid: bytes, now: float) -> BaseException | None:
        """The remembered refusal of nid, extended by this lookup; under the lock.

        A lookup keeps a refusal for another negative TTL, up to
        MAX_NEGATIVE_LIFETIMES negative TTLs after KMS refused: a consumer
        that retries a batch of forged records keeps the refusals it paid for.
        """
        f = self._negative.get(nid)
        if f is None or now >= f.expires:
            return None
        f.expires = min(now + self._negative_ttl, f.deadline)
        return f.err

    def _remember(self, nid: bytes, err: BaseException, now: float) -> None:
        """Remember a permanent refusal; under the lock. When the set is
        full, expired refusals are dropped first, then the oldest."""
        neg = self._negative
        neg.pop(nid, None)
        while neg:
            oldest = next(iter(neg.values()))
            if now < oldest.expires:
                break
            neg.popitem(last=False)
        if len(neg) >= self._max_negative:
            for k in [k for k, f in neg.items() if now >= f.expires]:
                del neg[k]
            while len(neg) >= self._max_negative:
                neg.popitem(last=False)
        ttl = self._negative_ttl
        neg[nid] = _Refusal(now + ttl, now + MAX_NEGATIVE_LIFETIMES * ttl, _compact(err))

    def get(self, wrapped_key: bytes, stream: Stream) -> tuple[Key, str]:
        """Return the data key of wrapped_key for stream, and its KMS key ARN.

        Raises OpenError (KMS refused the wrapped key for this context),
        KeyNotAllowedError, a KMSError, or RateLimitedError.
        """
        ad = stream.ad
        k = (wrapped_key, ad)
        now = self._clock()
        with self._lock:
            e = self._entries.get(k)
            if e is not None:
                if now - e.created < self._ttl:
                    self._entries.move_to_end(k)
                    self._stats.hits += 1
                    return e.key, e.arn
                del self._entries[k]
            self._stats.misses += 1
            nid = self._negative_id(wrapped_key, ad)
            neg = self._refusal(nid, now)
            if neg is not None:
                self._stats.negative_hits += 1
                raise _fresh(neg)
            fut = self._inflight.get(k)
            leader = fut is None
            if leader:
                if not self._bucket.take():
                    self._stats.rate_limited += 1
                    raise RateLimitedError("ksse: KMS rate limit reached; retry later")
                fut = Future()
                self._inflight[k] = fut
                self._stats.kms_calls += 1
        assert fut is not None
        if not leader:
            try:
                return fut.result()
            except BaseException as err:
                raise _fresh(err) from None
        try:
            result = self._unwrap(wrapped_key, stream)
        except BaseException as err:
            with self._lock:
                del self._inflight[k]
                if isinstance(err, KsseError) and is_permanent(err):
                    self._remember(nid, err, self._clock())
            fut.set_exception(err)
            raise
        with self._lock:
            del self._inflight[k]
            self._entries[k] = _Entry(result[0], result[1], self._clock())
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
                self._stats.evictions += 1
        fut.set_result(result)
        return result

    def _unwrap(self, wrapped_key: bytes, stream: Stream) -> tuple[Key, str]:
        """Ask KMS for the data key, naming each allowed key in turn as the
        KeyId of Decrypt: KMS refuses a wrapped key of any other key itself,
        without using that key, so no writer can make the answer depend on a
        key it controls. Only insecure_allow_any_key calls without KeyId."""
        if not self._pinned:
            return self._unwrap_with(wrapped_key, stream, "")
        refused: KMSError | None = None  # an allowed key that KMS would not use
        for allowed in self._pinned:
            try:
                return self._unwrap_with(wrapped_key, stream, allowed)
            except _OtherKey:
                continue
            except KMSError as err:
                if not err.allowed_key:
                    raise
                # Perhaps the record's key: transient, unless another
                # allowed key is the record's.
                if refused is None:
                    refused = err
        if refused is not None:
            raise refused
        if len(self._pinned) == 1:
            raise KeyNotAllowedError(f"ksse: the wrapped key is not of {self._pinned[0]}")
        raise KeyNotAllowedError(f"ksse: the wrapped key is of none of the {len(self._pinned)} allowed keys")

    def _key_id_of(self, allowed: str) -> str:
        """The KeyId to send for the allowed key ARN: itself, or for a
        multi-Region key its ARN in the client's Region (a full ARN, for
        keys of other accounts)."""
        f = allowed.split(":", 5)
        if not self._region or _mrk_parts(allowed) is None or f[3] == self._region:
            return allowed
        f[3] = self._region
        return ":".join(f)

    def _unwrap_with(self, wrapped_key: bytes, stream: Stream, allowed: str) -> tuple[Key, str]:
        """One Decrypt call, with allowed (if not empty) as the KeyId."""
        params: dict[str, Any] = {"CiphertextBlob": wrapped_key, "EncryptionContext": stream.context}
        if allowed:
            params["KeyId"] = self._key_id_of(allowed)
        try:
            out = self._kms.decrypt(**params)
        except (ClientError, BotoCoreError) as exc:
            if allowed and _of_other_key(exc):
                raise _OtherKey() from None
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            if code in ("InvalidCiphertextException", "IncorrectKeyException"):
                raise OpenError() from None
            err = classify_kms_error("Decrypt", exc)
            if allowed and isinstance(err, _ABOUT_KEY):
                # With a KeyId, KMS checks that key first: a disabled,
                # missing or denied key is the consumer's own problem, which
                # no writer can cause, and which passes once it is fixed.
                err._of_allowed_key(allowed)
            raise err from None
        arn = str(out.get("KeyId") or "")
        if allowed and not same_key(allowed, arn):
            raise KeyNotAllowedError(f"ksse: data key of {arn or 'an unnamed key'}, not of the allowed key {allowed}")
        plaintext = out.get("Plaintext")
        if not isinstance(plaintext, (bytes, bytearray)) or len(plaintext) != DATA_KEY_SIZE:
            raise KMSUnusableKeyError("Decrypt", "", "unusable data key")
        return Key(plaintext, wrapped_key, stream.ad), arn

    def clear(self) -> None:
        """Forget every cached key and remembered failure."""
        with self._lock:
            self._entries.clear()
            self._negative.clear()


class ProducerCache:
    """One data key per stream, from KMS GenerateDataKey, for ttl seconds.

    Concurrent callers for one stream share one KMS call. A failure is not
    cached.
    """

    def __init__(
        self,
        kms: Any,
        key_id: str,
        *,
        ttl: float = DEFAULT_TTL,
        max_records_per_key: int = MAX_RECORDS_PER_KEY,
        clock: Clock = time.monotonic,
    ) -> None:
        if kms is None or not key_id:
            raise ConfigError("ksse: a KMS client and a key ID are required")
        if ttl <= 0 or max_records_per_key < 1:
            raise ConfigError("ksse: ttl and max_records_per_key must be positive")
        self._kms = kms
        self._key_id = key_id
        self._ttl = ttl
        self._max_records = max_records_per_key
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[Stream, list[Any]] = {}  # stream -> [key, created, records]
        self._stream_locks: dict[Stream, threading.Lock] = {}
        self._stats = CacheStats()

    def stats(self) -> CacheStats:
        """Return a copy of the counters."""
        with self._lock:
            s = copy.copy(self._stats)
            s.entries = len(self._keys)
            return s

    def get(self, stream: Stream) -> Key:
        """Return the current data key for stream, counting one record."""
        with self._lock:
            slot = self._fresh_slot(stream)
            if slot is not None:
                slot[2] += 1
                self._stats.hits += 1
                return slot[0]
            self._stats.misses += 1
            lock = self._stream_locks.setdefault(stream, threading.Lock())
        with lock:
            with self._lock:
                slot = self._fresh_slot(stream)
                if slot is not None:
                    slot[2] += 1
                    return slot[0]
                self._stats.kms_calls += 1
            key = self._generate(stream)
            with self._lock:
                self._keys[stream] = [key, self._clock(), 1]
            return key

    def _fresh_slot(self, stream: Stream) -> list[Any] | None:
        slot = self._keys.get(stream)
        if slot is None:
            return None
        if self._clock() - slot[1] >= self._ttl or slot[2] >= self._max_records:
            del self._keys[stream]
            return None
        return slot

    def _generate(self, stream: Stream) -> Key:
        try:
            out = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=stream.context)
        except (ClientError, BotoCoreError) as exc:
            raise classify_kms_error("GenerateDataKey", exc) from None
        plaintext, blob = out.get("Plaintext"), out.get("CiphertextBlob")
        if not isinstance(plaintext, (bytes, bytearray)) or len(plaintext) != DATA_KEY_SIZE or not blob:
            raise KMSUnusableKeyError("GenerateDataKey", "", "unusable data key")
        try:
            return Key(plaintext, blob, stream.ad)
        except ConfigError:
            raise KMSUnusableKeyError("GenerateDataKey", "", "unusable wrapped key") from None
