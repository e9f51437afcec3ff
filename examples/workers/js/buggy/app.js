// A JavaScript worker with a bug and a reach outside (a test fixture).
// Asked for `bug`, it reads a property of undefined: the step must fail as
// fatal, naming the TypeError. Asked for `fetch`, it tries the network,
// which the component cannot reach: the step must fail, reaching nothing.
import { handler } from 'multiagents-worker';

export const buggy = handler((call, value) => {
  if (value.what === 'bug') return value.absent.deeper;
  if (value.what === 'fetch') return { reached: String(fetch('http://127.0.0.1:6379/')) };
  return { ok: true };
});
