const sdk = new URL('../src/', import.meta.url);
const entries = { 'multiagents-worker': 'index.js', 'multiagents-worker/testing': 'testing.js' };

export async function resolve(specifier, context, next) {
  if (specifier in entries) {
    return { url: new URL(entries[specifier], sdk).href, shortCircuit: true };
  }
  return next(specifier, context);
}
