"""The ksse envelope, version 1 (FORMAT.md).

An envelope is ``header || body || wrapped key``, with
``body = sealed partition key || nonce || ciphertext``. :func:`parse` splits
bytes into an :class:`Envelope` without copying, :func:`open` authenticates
and decrypts one under a :class:`Key`, and :func:`seal` writes one.

Every failure to parse, to satisfy a bound or to authenticate raises the
same :class:`~ksse.errors.OpenError`, and nothing of the record is
returned.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from typing import Any, Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigError, MalformedObjectError, OpenError

__all__ = [
    "MAGIC",
    "HEADER_SIZE",
    "OVERHEAD",
    "MAX_PARTITION_KEY",
    "MAX_WRAPPED_KEY",
    "MIN_BODY",
    "MAX_BODY",
    "MAX_PAYLOAD",
    "Envelope",
    "Key",
    "is_envelope",
    "parse",
    "parse_header",
    "parse_one",
    "open",
    "Reader",
    "seal",
]

Buffer = Union[bytes, bytearray, memoryview]

MAGIC = b"\xe5KS\x01"
"""Magic and version: 0xE5, "KS", version 1."""
_PREFIX = MAGIC[:3]
HEADER_SIZE = 26
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
DATA_KEY_SIZE = 32
MAX_PARTITION_KEY = 1024
MAX_WRAPPED_KEY = 6144
MAX_PAYLOAD = 10 << 20
MIN_BODY = 2 + NONCE_SIZE + TAG_SIZE
MAX_BODY = 2 + MAX_PARTITION_KEY + NONCE_SIZE + MAX_PAYLOAD + TAG_SIZE
OVERHEAD = HEADER_SIZE + 2 + NONCE_SIZE + TAG_SIZE
"""Bytes an envelope adds beyond the partition key and the wrapped key: 56."""

RESERVED_NONCE = b"\xff" * NONCE_SIZE
_STREAM_KEY_LABEL = b"ksse v1 stream key"
_RECORD_KEY_LABEL = b"ksse v1 record key"
# The partition key stream: AES-256-CTR from FF×12 || 0. OpenSSL's CTR
# increments the whole block, which equals the 32-bit counter of FORMAT.md
# for the at most 65 blocks a partition key needs.
_PK_CTR = modes.CTR(RESERVED_NONCE + b"\x00\x00\x00\x00")
_HEADER = struct.Struct(">4sHI")


# Each attribute read on cryptography's algorithms and modes modules costs
# about 2 µs (they warn of deprecated names): read them once, here.
_AES_PUBLIC = algorithms.AES
# AES256 states its key size as a class attribute, which the Rust
# constructor reads faster than AES's key_size property.
_AES = getattr(algorithms, "AES256", _AES_PUBLIC)


def _public_ctr(key: bytes) -> Any:
    """The partition key stream's cipher context, by the public API."""
    return Cipher(_AES_PUBLIC(key), _PK_CTR).decryptor()  # CTR: decrypt = encrypt


def _fast_create() -> Callable[[Any, Any], Any] | None:
    """Return cryptography's Rust constructor of cipher contexts, if it is safe.

    Cipher(AES(key), mode).decryptor() checks its arguments in Python,
    which costs more than the AES work of a record. The fast path builds
    an AES256 object without its key-size check (record keys are always
    32 bytes) and calls the Rust constructor that decryptor() calls. It is
    used only if it exists and gives the same key stream as the public API
    on a known key; otherwise None, and open uses the public API.
    """
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        create = rust_openssl.ciphers.create_decryption_ctx
        probe = bytes(range(32))
        alg = object.__new__(_AES)
        alg.key = probe
        if create(alg, _PK_CTR).update(bytes(48)) == _public_ctr(probe).update(bytes(48)):
            return create  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - any surprise means: use the public API
        pass
    return None


_create = _fast_create()
_new = object.__new__


def _fast_ctr(key: bytes) -> Any:
    """The partition key stream's cipher context, by the Rust constructor."""
    alg = _new(_AES)
    alg.key = key
    return _create(alg, _PK_CTR)  # type: ignore[misc]


_pk_stream = _public_ctr if _create is None else _fast_ctr


class Key:
    """The stream key of one data key, wrapped key and associated data.

    It derives each record key with one HMAC-SHA256. Its repr shows the
    associated data and the wrapped key's size, never key material, and it
    cannot be pickled.
    """

    __slots__ = ("_inner", "_outer", "_wrapped", "_ad")

    def __init__(self, data_key: Buffer, wrapped_key: Buffer, ad: Buffer) -> None:
        """Derive the stream key of FORMAT.md (HKDF-SHA256)."""
        if len(data_key) != DATA_KEY_SIZE:
            raise ConfigError(f"ksse: data key must be {DATA_KEY_SIZE} bytes")
        if not 1 <= len(wrapped_key) <= MAX_WRAPPED_KEY:
            raise ConfigError(f"ksse: wrapped key must be 1 to {MAX_WRAPPED_KEY} bytes")
        wrapped, ad = bytes(wrapped_key), bytes(ad)
        prk = hmac.digest(wrapped, bytes(data_key), "sha256")  # HKDF-Extract
        stream_key = hmac.digest(prk, _STREAM_KEY_LABEL + ad + b"\x01", "sha256")
        # HMAC(stream key, m) = H(k⊕opad || H(k⊕ipad || m)): keep both pad
        # states, the inner one past the record key label, so a record key
        # costs three short hash updates.
        pad = stream_key + bytes(32)
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in pad) + _RECORD_KEY_LABEL)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in pad))
        self._wrapped = wrapped
        self._ad = ad

    @property
    def wrapped_key(self) -> bytes:
        """The wrapped key (KMS CiphertextBlob): not secret."""
        return self._wrapped

    @property
    def ad(self) -> bytes:
        """The associated data: the stream identity."""
        return self._ad

    def record_key(self, salt: Buffer) -> bytes:
        """Return HKDF-Expand(stream key, "ksse v1 record key" || salt, 32)."""
        inner = self._inner.copy()
        inner.update(salt)
        inner.update(b"\x01")
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def sealed_size(self, partition_key_len: int, payload_len: int) -> int:
        """Return the size of an envelope of this key."""
        return OVERHEAD + partition_key_len + payload_len + len(self._wrapped)

    def __repr__(self) -> str:
        return f"Key(ad={self._ad!r}, wrapped_key=<{len(self._wrapped)} bytes>)"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("ksse: a Key cannot be pickled")


class Envelope:
    """One parsed envelope: views into the bytes given to :func:`parse`."""

    __slots__ = ("_buf", "wrapped_key_len", "body_len")

    def __init__(self, buf: memoryview, wrapped_key_len: int, body_len: int) -> None:
        self._buf = buf
        self.wrapped_key_len = wrapped_key_len
        self.body_len = body_len

    @property
    def size(self) -> int:
        """The envelope's size in bytes."""
        return len(self._buf)

    @property
    def header(self) -> memoryview:
        """Magic, version, lengths and salt: the first 26 bytes."""
        return self._buf[:HEADER_SIZE]

    @property
    def salt(self) -> memoryview:
        """The record's salt."""
        return self._buf[10:HEADER_SIZE]

    @property
    def body(self) -> memoryview:
        """Sealed partition key, nonce and ciphertext."""
        return self._buf[HEADER_SIZE : HEADER_SIZE + self.body_len]

    @property
    def wrapped_key(self) -> bytes:
        """The wrapped key (KMS CiphertextBlob), copied."""
        return bytes(self._buf[HEADER_SIZE + self.body_len :])

    def to_bytes(self) -> bytes:
        """Marshal the envelope: the bytes it was parsed from."""
        return bytes(self._buf)

    def __repr__(self) -> str:
        return f"Envelope(size={self.size}, wrapped_key_len={self.wrapped_key_len})"


def is_envelope(data: Buffer) -> bool:
    """Report whether data starts as an envelope does (E5 4B 53)."""
    return data[:3] == _PREFIX


def parse_header(data: Buffer) -> tuple[int, int]:
    """Check the header at the start of data: return (wrapped key length, body length).

    It checks the magic, the version and both lengths, and raises
    OpenError if any is wrong. The size of the envelope is
    ``HEADER_SIZE + body length + wrapped key length``.
    """
    if len(data) < HEADER_SIZE:
        raise OpenError()
    magic, wk_len, body_len = _HEADER.unpack_from(data, 0)
    if magic != MAGIC or not 1 <= wk_len <= MAX_WRAPPED_KEY or not MIN_BODY <= body_len <= MAX_BODY:
        raise OpenError()
    return wk_len, body_len


def parse(data: Buffer) -> tuple[Envelope, memoryview]:
    """Split the envelope at the start of data from the bytes after it.

    It checks the magic, the version and both lengths before it looks
    further, and copies nothing. It raises OpenError on any failure.
    """
    wk_len, body_len = parse_header(data)
    size = HEADER_SIZE + body_len + wk_len
    if len(data) < size:
        raise OpenError()
    mv = memoryview(data)
    return Envelope(mv[:size], wk_len, body_len), mv[size:]


def parse_one(data: Buffer) -> Envelope:
    """Parse data that must hold exactly one envelope."""
    wk_len, body_len = parse_header(data)
    if len(data) != HEADER_SIZE + body_len + wk_len:
        raise OpenError()  # short, or bytes after the envelope
    return Envelope(memoryview(data), wk_len, body_len)


def open(key: Key, env: Envelope) -> tuple[bytes, bytes]:  # noqa: A001 - the spec's name
    """Authenticate and decrypt env: return (partition key, payload).

    The envelope must carry key's wrapped key. It raises OpenError, and
    returns nothing of the record, if env is not authentic under key.
    """
    # The hot path: the steps of Key.record_key and _fast_ctr are written
    # out here, as a Python call costs about as much as a short step.
    buf, body_len = env._buf, env.body_len
    end = HEADER_SIZE + body_len
    if buf[end:].tobytes() != key._wrapped:
        raise OpenError()  # not the wrapped key that key was derived from
    inner = key._inner.copy()
    inner.update(buf[10:HEADER_SIZE])  # the salt
    inner.update(b"\x01")
    outer = key._outer.copy()
    outer.update(inner.digest())
    rk = outer.digest()
    if _pk_stream is _fast_ctr:
        alg = _new(_AES)
        alg.key = rk
        ctr = _create(alg, _PK_CTR)  # type: ignore[misc]
    else:
        ctr = _pk_stream(rk)
    # Two key stream blocks (the body holds at least 30 bytes) give the
    # length and a partition key of up to 30 bytes in one call.
    head = ctr.update(buf[HEADER_SIZE : HEADER_SIZE + 32])
    n = head[0] << 8 | head[1]
    if n > MAX_PARTITION_KEY or n + MIN_BODY > body_len:
        raise OpenError()
    pk_end = HEADER_SIZE + 2 + n
    nonce = buf[pk_end : pk_end + NONCE_SIZE].tobytes()
    if nonce == RESERVED_NONCE:
        raise OpenError()
    try:
        payload = AESGCM(rk).decrypt(nonce, buf[pk_end + NONCE_SIZE : end], buf[:pk_end])
    except InvalidTag:
        raise OpenError() from None
    if n <= 30:
        return head[2 : 2 + n], payload
    return head[2:] + ctr.update(buf[HEADER_SIZE + 32 : pk_end]), payload


def seal(key: Key, partition_key: Buffer, payload: Buffer) -> bytes:
    """Return the envelope of partition key and payload under key.

    The salt and the nonce are random; the reserved nonce is never used.
    """
    salt = os.urandom(SALT_SIZE)
    nonce = os.urandom(NONCE_SIZE)
    while nonce == RESERVED_NONCE:
        nonce = os.urandom(NONCE_SIZE)
    return _seal(key, partition_key, payload, salt, nonce)


def _seal(key: Key, partition_key: Buffer, payload: Buffer, salt: bytes, nonce: bytes) -> bytes:
    """Seal with a given salt and nonce (for seal and the vector tests)."""
    n = len(partition_key)
    if n > MAX_PARTITION_KEY:
        raise ConfigError(f"ksse: partition key over {MAX_PARTITION_KEY} bytes")
    if len(payload) > MAX_PAYLOAD:
        raise ConfigError(f"ksse: payload over {MAX_PAYLOAD} bytes")
    if len(salt) != SALT_SIZE or len(nonce) != NONCE_SIZE or nonce == RESERVED_NONCE:
        raise ConfigError("ksse: bad salt or nonce")
    rk = key.record_key(salt)
    ctr = _pk_stream(rk)
    sealed_pk = ctr.update(n.to_bytes(2, "big") + bytes(partition_key))
    body_len = 2 + n + NONCE_SIZE + len(payload) + TAG_SIZE
    aad = _HEADER.pack(MAGIC, len(key._wrapped), body_len) + salt + sealed_pk
    ct = AESGCM(rk).encrypt(nonce, payload, aad)
    return b"".join((aad, nonce, ct, key._wrapped))


class Reader:
    """Splits a stream of concatenated envelopes, one at a time.

    It reads each 26-byte header and checks its lengths before it reads
    the rest of the envelope, in chunks, so memory grows with the bytes
    that arrive, never with a length a header claims. ``fileobj`` is
    anything with ``read(n)`` (a file, an S3 StreamingBody). Not
    thread-safe.

    :meth:`next` returns the next Envelope and its offset, or None at the
    end. Bytes that do not form an envelope raise MalformedObjectError,
    again on every later call.
    """

    CHUNK = 64 << 10

    def __init__(self, fileobj: Any) -> None:
        self._f = fileobj
        self._offset = 0
        self._index = 0
        self._err: MalformedObjectError | None = None

    @property
    def offset(self) -> int:
        """Where the next envelope starts, in bytes."""
        return self._offset

    @property
    def index(self) -> int:
        """The position of the next envelope, from 0."""
        return self._index

    def _read(self, n: int) -> bytearray:
        """Read up to n bytes, fewer only at the end of the input."""
        buf = bytearray()
        while len(buf) < n:
            chunk = self._f.read(min(self.CHUNK, n - len(buf)))
            if not chunk:
                break
            buf += chunk
        return buf

    def _fail(self) -> MalformedObjectError:
        self._err = MalformedObjectError(
            f"ksse: no envelope at offset {self._offset} (record {self._index})"
        )
        self._err.record_index, self._err.offset = self._index, self._offset  # type: ignore[attr-defined]
        return self._err

    def next(self) -> tuple[Envelope, int] | None:
        """Return the next envelope and its offset, or None at the end."""
        if self._err is not None:
            raise MalformedObjectError(*self._err.args)
        buf = self._read(HEADER_SIZE)
        if not buf:
            return None
        try:
            wk_len, body_len = parse_header(buf)
        except OpenError:
            raise self._fail() from None
        rest = body_len + wk_len
        buf += self._read(rest)
        if len(buf) < HEADER_SIZE + rest:
            raise self._fail()
        offset = self._offset
        self._offset += len(buf)
        self._index += 1
        return Envelope(memoryview(buf), wk_len, body_len), offset
