// A JavaScript worker with a bug (a test fixture): asked for `bug`, it reads
// a property of undefined. The step must fail as fatal, naming the TypeError.
import { handler } from 'multiagents-worker';

export const buggy = handler((call, value) => {
  if (value.what === 'bug') return value.absent.deeper;
  return { ok: true };
});
