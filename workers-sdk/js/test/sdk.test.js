import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Fatal, Retryable, StateError, cbor, config, emit, log, run, state } from '../src/index.js';
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

test('values that cannot be encoded are fatal; raw values must be bytes; handlers are synchronous', () => {
  reset({ emitTopics: ['orders.*'] });
  assert.throws(() => call(() => state.open('b').setValue('k', new Map()), {}), (e) => e instanceof Fatal && /codec/.test(e.message));
  assert.throws(() => call(() => state.open('b').set('k', 'text'), {}), /state values are bytes/);
  assert.throws(() => call(() => emit('orders.x', new Map()), {}), (e) => e instanceof Fatal && /cannot encode the event/.test(e.message));
  assert.throws(() => call(async () => 1, {}), (e) => e instanceof Fatal && /Promise/.test(e.message));
  assert.throws(() => state.open('b').increment('n', 1.5), RangeError);
  assert.equal(config.get('constructor'), null, 'only the settings given');
});

test('a failing store is retryable; bad input is fatal', () => {
  reset();
  const failing = () => { throw new StateError('other', 'the store is down'); };
  assert.throws(() => call(failing, {}), (e) => e instanceof Retryable && /the store is down/.test(e.message));
  assert.throws(() => run({ transactionId: 't', workflow: 'w', step: 's', attempt: 1 }, new Uint8Array([0xff]), () => 1), (e) => e instanceof Fatal && /not CBOR/.test(e.message));
});
