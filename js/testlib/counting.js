/**
 * A KMS client wrapper that counts the calls per operation, measures their
 * concurrency, can hold them until released, and can inject errors.
 */

export class CountingKMS {
  /** @param {{send: Function}} inner */
  constructor(inner) {
    this.inner = inner;
    this.calls = { Decrypt: 0, GenerateDataKey: 0 };
    this.inputs = [];
    this.active = 0;
    this.maxActive = 0;
    /** @type {((cmd: any) => Error | undefined) | undefined} */
    this.inject = undefined;
    /** @type {Promise<void> | undefined} */
    this.gate = undefined;
  }

  /** Holds calls until the returned function is called. */
  hold() {
    let release;
    this.gate = new Promise((r) => { release = r; });
    return () => { this.gate = undefined; release(); };
  }

  async send(cmd) {
    const op = cmd.constructor.name.replace(/Command$/, '');
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    this.inputs.push({ op, input: cmd.input });
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      if (this.gate) await this.gate;
      const err = this.inject?.(cmd);
      if (err) throw err;
      return await this.inner.send(cmd);
    } finally {
      this.active--;
    }
  }
}
