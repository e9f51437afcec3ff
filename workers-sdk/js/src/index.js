// multiagents-worker for JavaScript: a workflow step as a WebAssembly
// component (componentize-js). A worker module registers its step:
//
//   import { handler, Fatal, config } from 'multiagents-worker';
//   handler((call, order) => {
//     if (!order.items?.length) throw new Fatal(`order ${order.id} has no items`);
//     return { ...order, checked_by: call.step };
//   });
//
// `multiagents worker build <dir>` bundles it with this SDK and builds the
// component. Input and output travel as CBOR; throw Retryable or Fatal to
// fail the step; any other exception fails it as fatal, named with its stack.

import * as cbor from './cbor.js';
import { EmitError, Fatal, Retryable, StateError, WorkerError, host } from './host.js';

export { cbor, EmitError, Fatal, Retryable, StateError, WorkerError };

let registered = null;

/** Makes `fn(call, input)` this worker's step function. */
export function handler(fn) {
  if (registered !== null && registered !== fn) throw new Error('a worker has one handler, and it is already registered');
  registered = fn;
  return fn;
}

/** Runs `fn` (default: the registered handler) on CBOR bytes, as the host calls it. */
export function run(call, bytes, fn = registered) {
  if (fn === null) throw new Error('no handler in the worker module: register its step function with handler(fn)');
  let input;
  try {
    input = cbor.decode(bytes);
  } catch (e) {
    throw new Fatal(`the step's input is not CBOR: ${e.message}`);
  }
  let out;
  try {
    out = fn(call, input);
    if (out && typeof out.then === 'function') {
      throw new Fatal('the handler returned a Promise: a step function is synchronous here (no async/await)');
    }
  } catch (e) {
    // As the Rust SDK's `?`: a failing store or a refused event may heal,
    // a missing grant or a malformed value does not.
    if (e instanceof WorkerError) throw e;
    if (e instanceof StateError) throw e.kind === 'other' ? new Retryable(e.message) : new Fatal(e.message);
    if (e instanceof EmitError) throw new Retryable(`emit refused: ${e.message}`);
    throw e;
  }
  try {
    return cbor.encode(out);
  } catch (e) {
    throw new Fatal(`the step's output cannot be CBOR: ${e.message}`);
  }
}

class Bucket {
  constructor(name, inner) {
    this.name = name;
    this.inner = inner;
  }
  get(key) { return this.inner.get(key); }
  set(key, bytes) {
    if (typeof bytes === 'string') throw new TypeError('state values are bytes (use setValue for other values), not a string');
    this.inner.set(key, cbor.asBytes(bytes));
  }
  delete(key) { this.inner.delete(key); }
  exists(key) { return this.inner.exists(key); }
  getValue(key, fallback = null) {
    const raw = this.get(key);
    if (raw === undefined || raw === null) return fallback;
    try {
      return cbor.decode(raw);
    } catch (e) {
      throw new StateError('codec', `${key} in bucket ${this.name} is not CBOR: ${e.message}`);
    }
  }
  setValue(key, value) {
    let raw;
    try {
      raw = cbor.encode(value);
    } catch (e) {
      throw new StateError('codec', `${key} in bucket ${this.name}: ${e.message}`);
    }
    this.set(key, raw);
  }
  /** Atomically adds `delta` (a whole number ≥ 0); the new value (a bigint beyond 2^53). */
  increment(key, delta = 1) {
    const ok = typeof delta === 'bigint' ? delta >= 0n : Number.isSafeInteger(delta) && delta >= 0;
    if (!ok) throw new RangeError(`increment takes a whole number ≥ 0 (keep a second counter to subtract), not ${delta}`);
    return this.inner.increment(key, delta);
  }
  counter(key) { return this.increment(key, 0); }
}

/** Durable key-value state in the worker's namespace. */
export const state = {
  open(name = '') {
    return new Bucket(name || 'default', host().open(name));
  },
};

/** The worker's settings ([workers.<name>.config]): strings, read-only. */
export const config = {
  get(key, fallback = null) {
    const v = host().config(key);
    return v === undefined || v === null ? fallback : v;
  },
  all() { return host().configAll(); },
};

const level = (name) => (message, context = '') => host().log(name, context, String(message));

/** Log records, forwarded into the host's log. */
export const log = {
  trace: level('trace'), debug: level('debug'), info: level('info'),
  warn: level('warn'), error: level('error'), critical: level('critical'),
};

/** Publishes `event` (bytes as they are, anything else as CBOR) on `topic`;
 * an event CBOR cannot hold is Fatal, a refused one throws EmitError. */
export function emit(topic, event) {
  let payload;
  if (event instanceof Uint8Array || event instanceof ArrayBuffer) payload = cbor.asBytes(event);
  else {
    try {
      payload = cbor.encode(event);
    } catch (e) {
      throw new Fatal(`cannot encode the event for ${topic}: ${e.message}`);
    }
  }
  host().emit(topic, payload);
}
