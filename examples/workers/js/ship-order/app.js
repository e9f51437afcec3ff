// ship-order in JavaScript: the port of examples/workers/ship-order (same
// input, output and event, so the order saga runs the same).
import { config, emit, handler, log } from 'multiagents-worker';
import { stableId } from './orders.js';

export const ship = handler((call, order) => {
  const carrier = config.get('carrier', 'ACME Post');
  const trackingId = stableId('TRK', call.transactionId, order.id).toUpperCase();
  emit('orders.shipped', { order_id: order.id, transaction_id: call.transactionId, tracking_id: trackingId, carrier });
  log.info(`order ${order.id} shipped with ${carrier}: ${trackingId}`);
  return { ...order, shipment: { tracking_id: trackingId, carrier } };
});
