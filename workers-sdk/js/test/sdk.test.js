import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Fatal, Retryable, cbor, config, emit, log, state } from '../src/index.js';
import { call, reset } from '../src/testing.js';

const double = (c, value) => ({ n: value.n * 2, tx: c.transactionId, attempt: c.attempt });

test('a handler gets decoded input and its output is encoded', () => {
  reset();
  assert.deepEqual(call(double, { n: 21 }, { transactionId: 'tx-9', attempt: 3 }), { n: 42, tx: 'tx-9', attempt: 3 });
});

test('state: values, counters, grants', () => {
  const host = reset({ allowedBuckets: ['payments'] });
  const b = state.open('payments');
  assert.equal(b.getValue('k'), null);
  b.setValue('k', { amount: 5 });
  assert.deepEqual(host.value('payments', 'k'), { amount: 5 });
  assert.equal(b.increment('n'), 1);
  assert.equal(b.increment('n', 4), 5);
  assert.equal(new TextDecoder().decode(host.bucket('payments').get('n')), '5');
  assert.throws(() => state.open('secrets'), /access-denied/);
  assert.throws(() => b.increment('n', -1), RangeError);
});

test('config, logs and events', () => {
  const host = reset({ config: { carrier: 'ACME' }, emitTopics: ['orders.*'] });
  assert.equal(config.get('carrier'), 'ACME');
  assert.equal(config.get('absent', 'd'), 'd');
  log.info('shipped', 'ship');
  assert.deepEqual(host.logs, [['info', 'ship', 'shipped']]);
  emit('orders.shipped', { id: 'o-1' });
  assert.deepEqual(host.events, [['orders.shipped', cbor.encode({ id: 'o-1' })]]);
});

test('errors: worker errors pass, uncaught state and emit failures convert', () => {
  reset({ allowedBuckets: [], emitTopics: [] });
  assert.throws(() => call(() => { throw new Retryable('later'); }, {}), Retryable);
  assert.throws(() => call(() => state.open('x'), {}), (e) => e instanceof Fatal && /access-denied/.test(e.message));
  assert.throws(() => call(() => emit('billing.x', {}), {}), (e) => e instanceof Retryable && /emit refused/.test(e.message));
  assert.throws(() => call(() => new Map(), {}), (e) => e instanceof Fatal && /cannot be CBOR/.test(e.message));
});
