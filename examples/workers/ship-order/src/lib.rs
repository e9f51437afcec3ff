//! `ship-order`: the last step of the order saga — books the shipment and
//! announces it.
//!
//! Input: an [`orders::Order`]. Output: the order with
//! [`shipment`](orders::Order::shipment) filled in; its `tracking_id` is
//! stable per transaction. Emits an [`orders::OrderShipped`] event on
//! `orders.shipped` (the registration must permit that topic). No
//! compensation: it is the pivot after which the saga only goes forward.
//!
//! Config: `carrier` (default `ACME Post`). Stateless: a retried call emits the
//! event again (with the same tracking id), so consumers deduplicate on it.

use multiagents_worker::prelude::*;
use orders::{Order, OrderShipped, SHIPPED_TOPIC, Shipment, stable_id};

fn ship(call: &Call, mut order: Order) -> Result<Order, WorkerError> {
    let carrier = config::get("carrier")?.unwrap_or_else(|| "ACME Post".to_owned());
    let tracking_id = stable_id("TRK", &[&call.transaction_id, &order.id]).to_uppercase();
    emit(
        SHIPPED_TOPIC,
        &OrderShipped {
            order_id: order.id.clone(),
            transaction_id: call.transaction_id.clone(),
            tracking_id: tracking_id.clone(),
            carrier: carrier.clone(),
        },
    )?;
    info!("order {} shipped with {carrier}: {tracking_id}", order.id);
    order.shipment = Some(Shipment { tracking_id, carrier });
    Ok(order)
}

multiagents_worker::export_worker!(ship);

// Tests run on the host target, against the SDK's simulated host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use multiagents_worker::testing;

    #[test]
    fn ships_and_emits() {
        testing::reset();
        let call = Call::new("tx-1", "order-saga", "ship-order", 1);
        let shipped = ship(&call, orders::sample_order()).unwrap().shipment.unwrap();
        assert!(shipped.tracking_id.starts_with("TRK"));
        let events = testing::emitted();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].topic, SHIPPED_TOPIC);
        let event: OrderShipped = events[0].decode().unwrap();
        assert_eq!(event.tracking_id, shipped.tracking_id);
        assert_eq!(event.order_id, "o-1001");
    }

    #[test]
    fn a_refused_topic_fails_the_call() {
        testing::reset();
        testing::deny_topic(SHIPPED_TOPIC);
        let call = Call::new("tx-1", "order-saga", "ship-order", 1);
        assert!(ship(&call, orders::sample_order()).is_err());
    }
}
