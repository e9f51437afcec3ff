// ship-order against the simulated host: the Rust worker's tests, ported.
// The SDK resolves through workers-sdk/js/testing/register.mjs (scripts/test.sh):
//   node --import ./workers-sdk/js/testing/register.mjs --test examples/workers/js/
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Retryable, cbor } from 'multiagents-worker';
import { call, reset } from 'multiagents-worker/testing';

import { ship } from '../app.js';
import { stableId } from '../orders.js';

const ORDER = { id: 'o-1001', customer: 'c-42', currency: 'EUR', items: [{ sku: 'BOOK-1', qty: 2, unit_price: 150 }] };

test('ships and emits', () => {
  const host = reset({ emitTopics: ['orders.shipped'] });
  const out = call(ship, ORDER, { transactionId: 'tx-1' });
  assert.equal(out.shipment.tracking_id, stableId('TRK', 'tx-1', 'o-1001').toUpperCase());
  assert.equal(out.shipment.carrier, 'ACME Post');
  assert.equal(host.events.length, 1);
  const [topic, payload] = host.events[0];
  assert.equal(topic, 'orders.shipped');
  assert.equal(cbor.decode(payload).tracking_id, out.shipment.tracking_id);
});

test('a refused topic fails the call, retryably', () => {
  reset({ emitTopics: [] });
  assert.throws(() => call(ship, ORDER), (e) => e instanceof Retryable && /emit refused/.test(e.message));
});
