// A simulated host for unit tests (node --test): in-memory state, settable
// config, captured logs and events, and `call` to run a handler through
// CBOR as the runtime would.

import * as cbor from './cbor.js';
import { EmitError, StateError, install } from './host.js';
import { run } from './index.js';

export class SimulatedHost {
  constructor({ config = {}, allowedBuckets = null, emitTopics = null } = {}) {
    this.buckets = new Map();
    this.settings = { ...config };
    this.logs = [];
    this.events = [];
    this.allowedBuckets = allowedBuckets;
    this.emitTopics = emitTopics;
  }
  open(name) {
    const id = name || 'default';
    if (this.allowedBuckets && !this.allowedBuckets.includes(id)) throw new StateError('access-denied', `open bucket ${id}`);
    if (!this.buckets.has(id)) this.buckets.set(id, new Map());
    const data = this.buckets.get(id);
    return {
      get: (k) => data.get(k),
      set: (k, v) => data.set(k, cbor.asBytes(v)),
      delete: (k) => data.delete(k),
      exists: (k) => data.has(k),
      increment: (k, d) => {
        const text = new TextDecoder().decode(data.get(k) ?? new TextEncoder().encode('0'));
        if (!/^[0-9]+$/.test(text)) throw new StateError('other', `${k} is not a counter`);
        const now = BigInt(text) + BigInt(d);
        data.set(k, new TextEncoder().encode(String(now)));
        return now <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(now) : now;
      },
    };
  }
  config(key) { return Object.hasOwn(this.settings, key) ? this.settings[key] : undefined; }
  configAll() { return { ...this.settings }; }
  log(level, context, message) { this.logs.push([level, context, message]); }
  emit(topic, payload) {
    const ok = !this.emitTopics || this.emitTopics.some((t) => (t.endsWith('*') ? topic.startsWith(t.slice(0, -1)) : topic === t));
    if (!ok) throw new EmitError(`topic ${topic} is not permitted`);
    this.events.push([topic, payload]);
  }
  /** Bucket `name`'s contents: key → bytes. */
  bucket(name) { return this.buckets.get(name) ?? new Map(); }
  /** The CBOR value at `key` of `bucket` (null when absent). */
  value(bucket, key) {
    const raw = this.bucket(bucket).get(key);
    return raw === undefined ? null : cbor.decode(raw);
  }
}

/** Installs a fresh simulated host and returns it. */
export function reset(options) {
  const h = new SimulatedHost(options);
  install(h);
  return h;
}

/** Runs `fn` on `value` through CBOR both ways; throws what the worker throws. */
export function call(fn, value, { transactionId = 'tx-1', workflow = 'wf', step = 'step', attempt = 1 } = {}) {
  return cbor.decode(run({ transactionId, workflow, step, attempt }, cbor.encode(value), fn));
}
