/**
 * Error classes of ksse. Every error that ksse throws or returns extends
 * {@link KsseError} and has a stable `code`. Messages never hold key
 * material or record content.
 * @module ksse/errors
 */

/** Base class of every ksse error. */
export class KsseError extends Error {
  /**
   * @param {string} message what happened
   * @param {string} code the stable code of the class
   * @param {ErrorOptions} [options] the cause, if any
   */
  constructor(message, code, options) {
    super(message, options);
    /** The stable code of the error class. */
    this.code = code;
    /** True if the record will never decrypt (see CONSUMER-POLICY.md). */
    this.permanent = false;
  }

  get name() {
    return this.constructor.name;
  }
}

/**
 * The record is not authentic: it does not parse, breaks a bound, fails
 * the tag, belongs to another stream, or KMS refuses its wrapped key. Every
 * such failure gives the same message: nothing tells them apart.
 */
export class OpenError extends KsseError {
  constructor() {
    super('ksse: record is not authentic', 'KSSE_OPEN');
    this.permanent = true;
  }
}

/** The record is not an envelope, and plaintext is not allowed. */
export class NotEncryptedError extends KsseError {
  constructor() {
    super('ksse: record is not encrypted', 'KSSE_NOT_ENCRYPTED');
    this.permanent = true;
  }
}

/** The record's data key is under a KMS key that is not allowed. */
export class KeyNotAllowedError extends KsseError {
  /** @param {string} [keyArn] the KMS key that KMS reported, if any */
  constructor(keyArn) {
    super(keyArn ? `ksse: KMS key ${keyArn} is not allowed` : 'ksse: KMS key is not allowed', 'KSSE_KEY_NOT_ALLOWED');
    this.permanent = true;
    /** The KMS key ARN that KMS reported, or undefined. */
    this.keyArn = keyArn;
  }
}

/**
 * KMS failed. `permanent` says whether the failure is of a permanent class
 * (access denied, key disabled or not found, unusable data key) or
 * transient (throttling, 5xx, network, timeouts, anything else).
 * `allowedKey` is set when KMS refused an allowed key itself, sent as the
 * KeyId of Decrypt (disabled, pending deletion, missing, access denied):
 * such a refusal is transient whatever its class, since the records
 * decrypt once the key is usable again.
 */
export class KMSError extends KsseError {
  /**
   * @param {string} op the KMS operation
   * @param {string} kmsCode the KMS exception name, or the error name
   * @param {boolean} permanent whether the failure is permanent
   * @param {unknown} [cause] the SDK error
   * @param {string} [allowedKey] the allowed key ARN that KMS refused itself
   */
  constructor(op, kmsCode, permanent, cause, allowedKey) {
    super(
      `ksse: KMS ${op} failed: ${kmsCode}${allowedKey ? ` (the allowed key ${allowedKey} itself; its records decrypt once it is usable)` : ''}`,
      'KSSE_KMS',
      cause === undefined ? undefined : { cause },
    );
    this.permanent = permanent && !allowedKey;
    /** The KMS operation: "Decrypt" or "GenerateDataKey". */
    this.op = op;
    /** The KMS exception name (or error name for network failures). */
    this.kmsCode = kmsCode;
    /** The allowed key ARN that KMS refused itself, or undefined. */
    this.allowedKey = allowedKey || undefined;
  }
}

/**
 * A KMS call was refused locally: the token bucket is empty, or the batch
 * already unwrapped its share of new keys. Transient.
 */
export class RateLimitedError extends KsseError {
  constructor() {
    super('ksse: rate limited: too many new data keys', 'KSSE_RATE_LIMITED');
  }
}

/** The caller's configuration or arguments are wrong. */
export class ConfigError extends KsseError {
  /** @param {string} message what is wrong */
  constructor(message) {
    super(`ksse: ${message}`, 'KSSE_CONFIG');
  }
}

/**
 * A batch was not sent because some records failed to encrypt. `failures`
 * lists them by index; the other records were not sent either.
 */
export class NotSentError extends KsseError {
  /** @param {{index: number, error: Error}[]} failures the records at fault */
  constructor(failures) {
    super(`ksse: batch not sent: ${failures.length} record(s) failed to encrypt`, 'KSSE_NOT_SENT');
    /** The records that failed to encrypt, by index in the input. */
    this.failures = failures;
  }
}

/**
 * Reports whether err is a permanent failure: the record will never
 * decrypt, so retrying it is useless. Anything that is not a ksse error of
 * a permanent class is transient.
 * @param {unknown} err
 * @returns {boolean}
 */
export function isPermanent(err) {
  return err instanceof KsseError && err.permanent === true;
}
