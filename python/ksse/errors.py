"""Error types of ksse.

Every error ksse raises is a :class:`KsseError`. Each failure kind has its
own class, and :func:`is_permanent` sorts them into the two classes of the
consumer policy: permanent (the record will never decrypt) and transient
(retry later). No error message contains key material or record content.
"""

from __future__ import annotations

__all__ = [
    "KsseError",
    "OpenError",
    "MalformedObjectError",
    "NotEncryptedError",
    "KeyNotAllowedError",
    "KMSError",
    "KMSPermanentError",
    "KMSAccessDeniedError",
    "KMSDisabledError",
    "KMSInvalidStateError",
    "KMSNotFoundError",
    "KMSInvalidKeyUsageError",
    "KMSUnusableKeyError",
    "KMSThrottlingError",
    "RateLimitedError",
    "ConfigError",
    "InvalidStreamError",
    "InvalidPartitionKeyError",
    "RecordTooLargeError",
    "ClosedError",
    "is_permanent",
]


class KsseError(Exception):
    """Base class of every error ksse raises."""


class OpenError(KsseError):
    """The record is not authentic.

    One error for every failure to parse, to satisfy a bound or to
    authenticate: they are indistinguishable on purpose. Nothing of the
    record is returned with it.
    """

    def __init__(self, message: str = "ksse: record is not authentic") -> None:
        super().__init__(message)


class MalformedObjectError(OpenError):
    """Bytes of a Firehose object that cannot be split into envelopes."""

    def __init__(self, message: str = "ksse: object cannot be split into envelopes") -> None:
        super().__init__(message)


class NotEncryptedError(KsseError):
    """The record is not an envelope (it does not start with E5 4B 53)."""

    def __init__(self, message: str = "ksse: record is not encrypted") -> None:
        super().__init__(message)


class KeyNotAllowedError(KsseError):
    """The record's data key is of a KMS key outside the allowlist."""


class KMSError(KsseError):
    """A failed KMS call.

    ``code`` is the KMS error code ("" for network errors and timeouts).
    ``permanent`` tells whether retrying can help: subclasses of
    :class:`KMSPermanentError` are permanent, the others transient.

    ``allowed_key`` is set when KMS refused an allowed key itself, sent as
    the KeyId of Decrypt (disabled, pending deletion, missing, access
    denied). Such a refusal is transient whatever its class: no writer can
    cause it, and the records decrypt once the key is usable again.
    """

    permanent: bool = False
    allowed_key: str = ""

    def __init__(self, op: str, code: str, message: str) -> None:
        super().__init__(op, code, message)
        self.op = op
        self.code = code
        self.message = message

    def __str__(self) -> str:
        s = f"ksse: KMS {self.op}: {self.code or 'error'}: {self.message}"
        if self.allowed_key:
            s += f" (the allowed key {self.allowed_key} itself; its records decrypt once it is usable)"
        return s

    def _of_allowed_key(self, key_arn: str) -> KMSError:
        """Mark self as a refusal of the allowed key key_arn itself: transient."""
        self.allowed_key = key_arn
        self.permanent = False
        return self


class KMSPermanentError(KMSError):
    """A KMS failure that recurs for the same wrapped key.

    Transient (``permanent`` False) when it is about an allowed key itself
    (see ``KMSError.allowed_key``).
    """

    permanent = True


class KMSAccessDeniedError(KMSPermanentError):
    """The credentials may not use the KMS key (AccessDeniedException)."""


class KMSDisabledError(KMSPermanentError):
    """The KMS key is disabled (DisabledException)."""


class KMSInvalidStateError(KMSPermanentError):
    """The KMS key's state forbids the call (KMSInvalidStateException)."""


class KMSNotFoundError(KMSPermanentError):
    """The KMS key does not exist (NotFoundException)."""


class KMSInvalidKeyUsageError(KMSPermanentError):
    """The KMS key cannot be used this way (InvalidKeyUsageException)."""


class KMSUnusableKeyError(KMSPermanentError):
    """KMS returned a data key that is not 32 bytes."""


class KMSThrottlingError(KMSError):
    """KMS throttled the call. Transient."""


class RateLimitedError(KsseError):
    """The local KMS rate limit or the per-batch new-key bound was hit.

    Transient: no KMS call was made; retry later.
    """


class ConfigError(KsseError, ValueError):
    """A Decryptor, Encryptor or cache was constructed or called wrongly."""


class InvalidStreamError(ConfigError):
    """A stream name or ARN that Kinesis or Firehose would not accept."""


class InvalidPartitionKeyError(KsseError, ValueError):
    """A partition key that is empty, too long or not valid UTF-8."""


class RecordTooLargeError(KsseError, ValueError):
    """A record whose envelope exceeds the destination's record limit."""


class ClosedError(KsseError):
    """The Decryptor or Encryptor was closed."""


_PERMANENT = (OpenError, NotEncryptedError, KeyNotAllowedError)


def is_permanent(err: BaseException) -> bool:
    """Report whether err will recur for the same record.

    Permanent: not authentic, not encrypted, key not allowed, and the KMS
    refusals of :class:`KMSPermanentError`, unless KMS refused an allowed
    key itself. Everything else is transient: such refusals, throttling,
    the local rate limit, network errors, timeouts, and any error ksse does
    not know.
    """
    if isinstance(err, _PERMANENT):
        return True
    return isinstance(err, KMSError) and err.permanent
