//! `reserve-stock`: holds stock for every line of the order.
//!
//! Input: an [`orders::Order`]. Output: the order with
//! [`reservation`](orders::Order::reservation) filled in. Compensated by
//! `release-stock`.
//!
//! State (bucket `inventory`, shared with `release-stock`): two counters per
//! SKU, `reserved/<sku>` and `released/<sku>` — `wasi:keyvalue` atomics can
//! only add, so units in use are `reserved - released`, and the stock of a SKU
//! is its initial stock minus that. Reserving adds to `reserved` first and
//! backs out (adds the same to `released`) if that overdraws the stock, so
//! concurrent reservations never oversell. The reservation is recorded under
//! `reservation/<transaction id>`; a redelivered command finds it and returns
//! it without reserving twice.
//!
//! Config: `initial_stock` (units per SKU, default 100), overridden per SKU by
//! `initial_stock.<sku>`; `out_of_stock_retryable` (`true`/`false`, default
//! `false`): whether running out of stock is worth retrying (stock may be
//! released by a compensating saga) or fatal.

use std::collections::BTreeMap;

use multiagents_worker::prelude::*;
use multiagents_worker::state::Bucket;
use orders::{INVENTORY_BUCKET, Order, Reservation};

fn initial_stock(sku: &str) -> Result<u64, WorkerError> {
    match config::parse::<u64>(&format!("initial_stock.{sku}"))? {
        Some(n) => Ok(n),
        None => Ok(config::parse_or("initial_stock", 100)?),
    }
}

/// Puts back what this call reserved before it failed.
fn back_out(inventory: &Bucket, taken: &BTreeMap<String, u64>) -> Result<(), WorkerError> {
    for (sku, qty) in taken {
        inventory.increment(&format!("released/{sku}"), *qty)?;
    }
    Ok(())
}

fn reserve(call: &Call, mut order: Order) -> Result<Order, WorkerError> {
    let inventory = state::open(INVENTORY_BUCKET)?;
    let record_key = format!("reservation/{}", call.transaction_id);
    if let Some(existing) = inventory.get_typed::<Reservation>(&record_key)? {
        info!(
            "transaction {} already holds its reservation",
            call.transaction_id
        );
        order.reservation = Some(existing);
        return Ok(order);
    }

    let wanted = order.quantities().map_err(WorkerError::fatal)?;
    let retryable = config::parse_or("out_of_stock_retryable", false)?;
    let mut taken = BTreeMap::new();
    for (sku, qty) in &wanted {
        let stock = initial_stock(sku)?;
        let reserved = inventory.increment(&format!("reserved/{sku}"), *qty)?;
        let released = inventory.counter(&format!("released/{sku}"))?;
        taken.insert(sku.clone(), *qty);
        let in_use = reserved.saturating_sub(released);
        if in_use > stock {
            back_out(&inventory, &taken)?;
            let available = stock.saturating_sub(in_use.saturating_sub(*qty));
            let msg = format!(
                "out of stock: {sku} has {available} units available, order {} wants {qty}",
                order.id
            );
            warn!("{msg}");
            return Err(if retryable {
                WorkerError::retryable(msg)
            } else {
                WorkerError::fatal(msg)
            });
        }
    }

    let reservation = Reservation {
        transaction_id: call.transaction_id.clone(),
        items: taken,
    };
    inventory.set_typed(&record_key, &reservation)?;
    info!("reserved {:?} for order {}", reservation.items, order.id);
    order.reservation = Some(reservation);
    Ok(order)
}

multiagents_worker::export_worker!(reserve);

// Tests run on the host target, against the SDK's simulated host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use multiagents_worker::testing;

    fn call(tx: &str) -> Call {
        Call::new(tx, "order-saga", "reserve-stock", 1)
    }

    #[test]
    fn reserves_once_per_transaction() {
        testing::reset();
        let out = reserve(&call("tx-1"), orders::sample_order()).unwrap();
        let r = out.reservation.unwrap();
        assert_eq!(r.items["BOOK-1"], 2);
        // A redelivery returns the same reservation without reserving again.
        let again = reserve(&call("tx-1"), orders::sample_order()).unwrap();
        assert_eq!(again.reservation.unwrap(), r);
        assert_eq!(testing::bucket(INVENTORY_BUCKET)["reserved/BOOK-1"], b"2");
    }

    #[test]
    fn out_of_stock_backs_out_and_fails() {
        testing::reset();
        testing::set_config("initial_stock", "3");
        reserve(&call("tx-1"), orders::sample_order()).unwrap(); // BOOK-1: 2 of 3
        let err = reserve(&call("tx-2"), orders::sample_order()).unwrap_err();
        assert!(
            err.is_fatal() && err.message().contains("out of stock: BOOK-1 has 1 units"),
            "{err}"
        );
        let inv = testing::bucket(INVENTORY_BUCKET);
        assert_eq!(inv["reserved/BOOK-1"], b"4");
        assert_eq!(inv["released/BOOK-1"], b"2");
        assert!(!inv.contains_key("reservation/tx-2"));

        testing::set_config("out_of_stock_retryable", "true");
        assert!(
            reserve(&call("tx-3"), orders::sample_order())
                .unwrap_err()
                .is_retryable()
        );
    }

    #[test]
    fn per_sku_stock_overrides_the_default() {
        testing::reset();
        testing::set_config("initial_stock", "1000");
        testing::set_config("initial_stock.PEN-7", "0");
        let err = reserve(&call("tx-1"), orders::sample_order()).unwrap_err();
        assert!(err.message().contains("PEN-7"), "{err}");
        // BOOK-1 (reserved first, in SKU order) was put back.
        let inv = testing::bucket(INVENTORY_BUCKET);
        assert_eq!(inv["released/BOOK-1"], b"2");
    }
}
