// A JavaScript worker with a bug and a reach outside (a test fixture).
// Asked for `bug`, it reads a property of undefined: the step must fail as
// fatal, naming the TypeError. Asked for `fetch`, it tries the network,
// which the component cannot reach: the step must fail, reaching nothing.
// Asked to `fill`, it writes keys into its state until the host refuses
// one, and answers with the refusal's kind.
import { StateError, handler, state } from 'multiagents-worker';

function fill() {
  const bucket = state.open();
  for (let i = 0; i < 1000; i++) {
    try {
      bucket.set(`key-${i}`, new Uint8Array(100));
    } catch (e) {
      if (e instanceof StateError) return { refused: e.kind, written: i };
      throw e;
    }
  }
  return { refused: null, written: 1000 };
}

export const buggy = handler((call, value) => {
  if (value.what === 'bug') return value.absent.deeper;
  if (value.what === 'fill') return fill();
  if (value.what === 'fetch') return { reached: String(fetch('http://127.0.0.1:6379/')) };
  return { ok: true };
});
