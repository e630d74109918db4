"""Reader of the envelope test vector files (envelope/internal/vecgen)."""

from __future__ import annotations

import base64
import hashlib
import os

from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# KSSE_VECTORS_DIR names another envelope/testdata directory to run.
TESTDATA = Path(os.environ.get("KSSE_VECTORS_DIR") or REPO / "envelope" / "testdata")


@dataclass
class Vector:
    """One vector file."""

    file: str
    expect: str = ""
    stage: str = ""
    data_key: bytes = b""
    wrapped_key: bytes = b""
    ad: bytes = b""
    partition_key: bytes | None = None
    payload: bytes | None = None
    payload_size: int | None = None
    payload_sha256: bytes | None = None
    comment: str = ""
    envelope: bytes = field(default=b"", repr=False)

    def payload_matches(self, payload: bytes) -> bool:
        """Whether payload is the vector's expected payload."""
        if self.payload is not None:
            return payload == self.payload
        return len(payload) == self.payload_size and hashlib.sha256(payload).digest() == self.payload_sha256


_HEX = {"data key": "data_key", "wrapped key": "wrapped_key", "partition key": "partition_key",
        "payload": "payload", "payload sha256": "payload_sha256"}


def parse_vector(path: Path) -> Vector:
    """Parse a vector file; raise ValueError if it breaks the format."""
    v = Vector(file=path.name)
    text = path.read_text(encoding="utf-8")
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise ValueError(f"{path}: no blank line after the header")
    for line in head.split("\n"):
        key, colon, val = line.partition(":")
        if not colon:
            raise ValueError(f"{path}: bad header line {line!r}")
        if val.startswith(" "):
            val = val[1:]
        elif val:
            raise ValueError(f"{path}: bad header line {line!r}")
        if key in _HEX:
            setattr(v, _HEX[key], bytes.fromhex(val))
        elif key == "expect":
            v.expect = val
        elif key == "stage":
            v.stage = val
        elif key == "ad":
            v.ad = val.encode("utf-8")
        elif key == "payload size":
            v.payload_size = int(val)
        elif key == "comment":
            v.comment = val
        else:
            raise ValueError(f"{path}: unknown header {key!r}")
    v.envelope = base64.b64decode("".join(body.split()), validate=True)
    if v.expect == "success" and not v.stage:
        if v.partition_key is None:
            raise ValueError(f"{path}: success without partition key")
        if v.payload is None and (v.payload_size is None or v.payload_sha256 is None or len(v.payload_sha256) != 32):
            raise ValueError(f"{path}: success without payload")
    elif not (v.expect == "failure" and v.stage in ("parse", "trailing", "open")):
        raise ValueError(f"{path}: bad expect {v.expect!r} / stage {v.stage!r}")
    return v


def vector_files() -> list[Path]:
    """The pinned vector and every file of envelope/testdata/vectors."""
    files = sorted((TESTDATA / "vectors").glob("*.txt"))
    pinned = TESTDATA / "v1-pinned.txt"
    return ([pinned] if pinned.exists() else []) + files


def load_vectors() -> list[Vector]:
    """Parse every vector file."""
    return [parse_vector(p) for p in vector_files()]


