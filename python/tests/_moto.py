"""A moto server for the tests, and boto3 clients of it.

KSSE_MOTO_ENDPOINT names a running server; otherwise one is started on a
free port for the whole test run and stopped at exit. If it cannot start,
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "us-east-1"
_lock = threading.Lock()
_endpoint: str | None = None
_error: str | None = None
_proc: subprocess.Popen[bytes] | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start() -> str:
    global _proc
    port = _free_port()
    _proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _proc.poll() is not None:
            raise RuntimeError(f"moto exited with status {_proc.returncode}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto did not start within 30 s")


def _stop() -> None:
    if _proc is not None and _proc.poll() is None:
        _proc.terminate()
        try:
            _proc.wait(5)
        except subprocess.TimeoutExpired:
            _proc.kill()


def endpoint() -> str:
    """The moto endpoint; skip (or fail under CI=true) if there is none."""
    global _endpoint, _error
    with _lock:
        if _endpoint is None and _error is None:
            env = os.environ.get("KSSE_MOTO_ENDPOINT")
            try:
                _endpoint = env or _start()
            except Exception as exc:  # noqa: BLE001 - reported below
                _error = f"moto unavailable: {exc}"
        if _endpoint is not None:
            return _endpoint
    if os.environ.get("CI") == "true":
        raise AssertionError(_error + " (CI=true: failing, not skipping)")
    raise unittest.SkipTest(_error)


def client(service: str) -> Any:
    """A boto3 client of the moto server, with retries on."""
    return boto3.client(
        service,
        endpoint_url=endpoint(),
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
    )


def aws_env() -> dict[str, str]:
    """The environment for a child process (the Go CLI) to use moto."""
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=endpoint(),
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
    )
    env.pop("AWS_PROFILE", None)
    return env


def new_key(kms: Any) -> str:
    """Create a KMS key; return its ARN."""
    return kms.create_key(Description="ksse python tests")["KeyMetadata"]["Arn"]


_counter = 0


def unique(prefix: str) -> str:
    """A name no other test uses."""
    global _counter
    with _lock:
        _counter += 1
        return f"{prefix}-{os.getpid()}-{_counter}"


def create_stream(kinesis: Any, name: str, shards: int = 1) -> str:
    """Create a Kinesis stream, wait until active; return its ARN."""
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(100):
        d = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if d["StreamStatus"] == "ACTIVE":
            return d["StreamARN"]
        time.sleep(0.05)
    raise AssertionError(f"stream {name} not active")


def read_stream(kinesis: Any, name: str) -> list[dict[str, Any]]:
    """Every record of every shard, with the ShardId added, shard by shard."""
    out = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        while it:
            res = kinesis.get_records(ShardIterator=it, Limit=1000)
            for r in res["Records"]:
                r["ShardId"] = shard["ShardId"]
                out.append(r)
            if not res["Records"] or res.get("MillisBehindLatest", 0) == 0:
                break
            it = res.get("NextShardIterator")
    return out


def client_error(code: str, op: str = "Decrypt") -> ClientError:
    """A botocore ClientError as KMS returns it."""
    return ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, op)


class CountingKMS:
    """A KMS client that counts Decrypt calls, on top of a real one.

    ``aws_incorrect_key`` turns moto's AccessDeniedException for a KeyId
    that is not the ciphertext's key into IncorrectKeyException, as AWS
    KMS answers. ``faults`` is a list of error codes raised, one per call,
    before calls reach the client. ``gate``, an Event, holds every call
    until it is set, so that a test can make callers overlap.
    """

    def __init__(self, inner: Any, *, aws_incorrect_key: bool = True) -> None:
        self.inner = inner
        self.aws_incorrect_key = aws_incorrect_key
        self.gate: threading.Event | None = None  # if set, calls wait for it (10 s at most)
        self.faults: list[str] = []
        self.fault_if: Any = None  # optional predicate on the call's params
        self.calls = 0
        self.params: list[dict[str, Any]] = []
        self.inflight = 0
        self.max_inflight = 0
        self._lock = threading.Lock()

    def decrypt(self, **params: Any) -> Any:
        with self._lock:
            self.calls += 1
            self.params.append(dict(params))
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            fault = None
            if self.faults and (self.fault_if is None or self.fault_if(params)):
                fault = self.faults.pop(0)
        try:
            if self.gate is not None:
                self.gate.wait(10)
            if fault:
                raise client_error(fault)
            try:
                return self.inner.decrypt(**params)
            except ClientError as exc:
                if self.aws_incorrect_key and "KeyId" in params and exc.response["Error"]["Code"] == "AccessDeniedException":
                    raise client_error("IncorrectKeyException") from None
                raise
        finally:
            with self._lock:
                self.inflight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FakeClock:
    """A settable clock for the caches."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
