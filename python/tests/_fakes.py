"""An in-memory KMS for tests that need no server."""

from __future__ import annotations

import os
import threading
from typing import Any

from botocore.exceptions import ClientError

FAKE_ARN = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555"


class FakeKMS:
    """Decrypt returns one data key for its one wrapped key, for one context."""

    def __init__(self, context: dict[str, str], arn: str = FAKE_ARN) -> None:
        self.data_key = os.urandom(32)
        self.wrapped = b"fake-kms:" + os.urandom(88)
        self.context = dict(context)
        self.arn = arn
        self.calls = 0
        self._lock = threading.Lock()

    def decrypt(self, **params: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        if params.get("CiphertextBlob") != self.wrapped or params.get("EncryptionContext") != self.context:
            raise ClientError({"Error": {"Code": "InvalidCiphertextException", "Message": ""}}, "Decrypt")
        return {"Plaintext": self.data_key, "KeyId": self.arn}

    def generate_data_key(self, **params: Any) -> dict[str, Any]:
        if params.get("EncryptionContext") != self.context:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": ""}}, "GenerateDataKey")
        return {"Plaintext": self.data_key, "CiphertextBlob": self.wrapped, "KeyId": self.arn}
