//! `validate-order`: the first step of the order saga.
//!
//! Input: an [`orders::Order`]. Output: the same order, unchanged. Fails
//! **fatal** — retrying cannot fix an order — when the order has no items,
//! a line has a non-positive quantity or an empty SKU, the id, customer or
//! currency is malformed, or the total overflows. No state, no config.

use multiagents_worker::prelude::*;
use orders::Order;

fn validate(call: &Call, order: Order) -> Result<Order, WorkerError> {
    order.validate().map_err(WorkerError::fatal)?;
    debug!(
        "order {} of transaction {} is valid",
        order.id, call.transaction_id
    );
    Ok(order)
}

multiagents_worker::export_worker!(validate);

// Tests run on the host target, against the SDK's simulated host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn valid_orders_pass_and_bad_ones_are_fatal() {
        let call = Call::new("tx-1", "order-saga", "validate-order", 1);
        let order = orders::sample_order();
        assert_eq!(validate(&call, order.clone()), Ok(order.clone()));

        let mut empty = order.clone();
        empty.items.clear();
        let err = validate(&call, empty).unwrap_err();
        assert!(err.is_fatal() && err.message().contains("no items"), "{err}");

        let mut negative = order;
        negative.items[0].qty = -1;
        let err = validate(&call, negative).unwrap_err();
        assert!(err.is_fatal() && err.message().contains("non-positive"), "{err}");
    }
}
