// Resolves `multiagents-worker` to this SDK for tests of workers outside
// it (node --import ./workers-sdk/js/testing/register.mjs --test …), as
// `multiagents worker build` does when it bundles a worker.
import { register } from 'node:module';

register('./resolve.mjs', import.meta.url);
