"""Reading Firehose-delivered S3 objects: concatenated envelopes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from . import envelope
from .decryptor import Decrypted, Decryptor
from .errors import KsseError, MalformedObjectError
from .stream import firehose_stream

__all__ = ["FirehoseReader"]

_CHUNK = 64 << 10


class FirehoseReader:
    """Splits and decrypts an object of concatenated envelopes.

    It reads each header before the rest of its envelope, and then the
    rest in chunks, so memory grows with the bytes that arrive, never with
    a length a header claims. Not thread-safe.

    :meth:`read` returns the next record, or None at the end. A record that
    fails to authenticate or whose key cannot be unwrapped raises its error
    (with ``record_index`` and ``offset`` attributes) and none of its
    bytes; reading may go on with the next record. Bytes that cannot be
    split raise MalformedObjectError, again on every later call.
    """

    def __init__(self, decryptor: Decryptor, delivery_stream: str, fileobj: IO[bytes] | Any) -> None:
        if decryptor is None or fileobj is None:
            raise TypeError("ksse: FirehoseReader needs a Decryptor and a file object")
        self._dec = decryptor
        self._stream = firehose_stream(delivery_stream)
        self._f = fileobj
        self._index = 0
        self._offset = 0
        self._err: KsseError | None = None
        self._eof = False

    def _read(self, n: int) -> bytearray:
        """Read up to n bytes, fewer only at the end of the object."""
        buf = bytearray()
        while len(buf) < n:
            chunk = self._f.read(min(_CHUNK, n - len(buf)))
            if not chunk:
                break
            buf += chunk
        return buf

    def _fail(self, offset: int) -> MalformedObjectError:
        err = MalformedObjectError(f"ksse: object cannot be split at offset {offset} (record {self._index})")
        err.record_index, err.offset = self._index, offset  # type: ignore[attr-defined]
        self._err = err
        return err

    def read(self) -> Decrypted | None:
        """Return the next record, decrypted, or None at the end."""
        if self._err is not None:
            raise MalformedObjectError(str(self._err))
        if self._eof:
            return None
        start = self._offset
        header = self._read(envelope.HEADER_SIZE)
        if not header:
            self._eof = True
            return None
        if len(header) < envelope.HEADER_SIZE:
            raise self._fail(start)
        try:
            wk_len, body_len = envelope.parse_header(header)
        except KsseError:
            raise self._fail(start) from None
        rest = self._read(body_len + wk_len)
        if len(rest) < body_len + wk_len:
            raise self._fail(start)
        self._offset = start + envelope.HEADER_SIZE + len(rest)
        index = self._index
        self._index += 1
        header += rest
        try:
            return self._dec.open_envelope(self._stream, envelope.parse_one(header))
        except KsseError as err:
            err.record_index, err.offset = index, start  # type: ignore[attr-defined]
            raise

    def __iter__(self) -> Iterator[Decrypted]:
        """Yield each record; stop at the end or at the first error (raised)."""
        while (d := self.read()) is not None:
            yield d
