// The component's export (`handle`) and host, for componentize-js: the
// entry `multiagents worker build` generates imports the worker's module
// (which registers its handler), then exports `handle` from here.

import { increment } from 'wasi:keyvalue/atomics@0.2.0-draft';
import { open } from 'wasi:keyvalue/store@0.2.0-draft';
import { get, getAll } from 'wasi:config/store@0.2.0-rc.1';
import { log } from 'wasi:logging/logging@0.1.0-draft';
import { emit } from 'multiagents:worker/emit@0.1.0';

import { EmitError, StateError, WorkerError, install } from './host.js';
import { run } from './index.js';

// A thrown component error carries the WIT error as `payload` (jco), or is it.
const cause = (e) => (e && typeof e === 'object' && 'payload' in e ? e.payload : e);

function stateError(e, what) {
  const v = cause(e);
  const tag = v && typeof v === 'object' ? v.tag : undefined;
  if (tag === 'no-such-store') return new StateError('no-such-store', what);
  if (tag === 'access-denied') return new StateError('access-denied', what);
  const message = String(v?.val ?? v);
  // The host's quota refusal comes as `other` with this prefix.
  const kind = message.startsWith('state quota exceeded') ? 'quota-exceeded' : 'other';
  return new StateError(kind, `${what}: ${message}`);
}

function guarded(what, f) {
  try {
    return f();
  } catch (e) {
    throw stateError(e, what);
  }
}

install({
  open(name) {
    const bucket = guarded(`open bucket ${name}`, () => open(name));
    return {
      get: (k) => guarded(`get ${k}`, () => bucket.get(k)),
      set: (k, v) => guarded(`set ${k}`, () => bucket.set(k, v)),
      delete: (k) => guarded(`delete ${k}`, () => bucket.delete(k)),
      exists: (k) => guarded(`exists ${k}`, () => bucket.exists(k)),
      increment: (k, d) => {
        const now = guarded(`increment ${k}`, () => increment(bucket, k, BigInt(d)));
        return now <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(now) : now;
      },
    };
  },
  config: (key) => guarded(`config ${key}`, () => get(key)),
  configAll: () => guarded('config', () => Object.fromEntries(getAll())),
  log: (lvl, context, message) => log(lvl, context, message),
  emit(topic, payload) {
    try {
      emit(topic, payload);
    } catch (e) {
      throw new EmitError(String(cause(e)));
    }
  },
});

/** `e` as text: its name, message and the first frames of its stack. */
function describe(e) {
  if (!(e instanceof Error)) return String(e);
  const frames = (e.stack || '').split('\n').map((f) => f.trim()).filter(Boolean).slice(0, 4);
  return `${e.name}: ${e.message}${frames.length ? ` (at ${frames.join(' < ')})` : ''}`;
}

export function handle(call, input) {
  const info = { transactionId: call.transactionId, workflow: call.workflow, step: call.step, attempt: call.attempt };
  try {
    return run(info, input);
  } catch (e) {
    if (e instanceof WorkerError) throw { tag: e.retryable ? 'retryable' : 'fatal', val: e.message };
    // A bug in the worker: fatal, saying what and where. (Left to the
    // runtime, its report reaches for files, which the host refuses, and
    // the message is lost in a permission error.)
    throw { tag: 'fatal', val: `unexpected ${describe(e)}` };
  }
}
