"""Reading Firehose-delivered S3 objects: concatenated envelopes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from . import envelope
from .decryptor import Decrypted, Decryptor
from .errors import KsseError
from .stream import firehose_stream

__all__ = ["FirehoseReader"]


class FirehoseReader:
    """Splits and decrypts an object of concatenated envelopes.

    It splits with an :class:`ksse.envelope.Reader`: each header is read
    and checked before the rest of its envelope, so memory grows with the
    bytes that arrive, never with a length a header claims. Not
    thread-safe.

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
        self._reader = envelope.Reader(fileobj)

    def read(self) -> Decrypted | None:
        """Return the next record, decrypted, or None at the end."""
        index = self._reader.index
        got = self._reader.next()
        if got is None:
            return None
        env, offset = got
        try:
            return self._dec.open_envelope(self._stream, env)
        except KsseError as err:
            err.record_index, err.offset = index, offset  # type: ignore[attr-defined]
            raise

    def __iter__(self) -> Iterator[Decrypted]:
        """Yield each record; stop at the end or at the first error (raised)."""
        while (d := self.read()) is not None:
            yield d
