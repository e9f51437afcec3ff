// The host a worker calls: the component's imports (installed by
// component.js inside a built component) or, in tests, the simulated host
// of testing.js.

let current = null;

export function install(host) {
  current = host;
}

export function host() {
  if (current === null) {
    throw new Error('no host: inside a component, component.js installs it; in tests, call testing.reset()');
  }
  return current;
}

export class WorkerError extends Error {
  constructor(message, retryable) {
    super(message);
    this.retryable = retryable;
  }
}

/** A transient failure: the host retries while the step's policy allows. */
export class Retryable extends WorkerError {
  constructor(message) {
    super(message, true);
    this.name = 'Retryable';
  }
}

/** A permanent failure: the step fails at once and the saga compensates. */
export class Fatal extends WorkerError {
  constructor(message) {
    super(message, false);
    this.name = 'Fatal';
  }
}

/**
 * A state call failed: kind is no-such-store, access-denied, quota-exceeded (the write would take
 * the worker's namespace past its quota, state_max_keys/state_max_mb), codec or other (the store failed).
 */
export class StateError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.kind = kind;
  }
}

/** The host refused or failed to publish an event. */
export class EmitError extends Error {}
