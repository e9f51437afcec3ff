//! `release-stock`: compensation of `reserve-stock` — puts the units a
//! transaction reserved back into stock.
//!
//! Input: an [`orders::Order`] (only used for logging: what to release is the
//! reservation `reserve-stock` recorded under the transaction id in bucket
//! `inventory`). Output: `{ "released": { sku: qty, ... }, "already_released":
//! bool }`.
//!
//! Idempotent per transaction: a `release-marker/<transaction id>` counter
//! lets exactly one call add the units back to `released/<sku>`; repeats (and
//! a transaction that never reserved) release nothing and succeed.

use std::collections::BTreeMap;

use multiagents_worker::prelude::*;
use orders::{INVENTORY_BUCKET, Order, Reservation};

#[derive(Debug, Serialize)]
struct Released {
    released: BTreeMap<String, u64>,
    already_released: bool,
}

fn release(call: &Call, order: Order) -> Result<Released, WorkerError> {
    let inventory = state::open(INVENTORY_BUCKET)?;
    let Some(reservation) =
        inventory.get_typed::<Reservation>(&format!("reservation/{}", call.transaction_id))?
    else {
        info!(
            "transaction {} (order {}) holds no reservation: nothing to release",
            call.transaction_id, order.id
        );
        return Ok(Released {
            released: BTreeMap::new(),
            already_released: false,
        });
    };
    if inventory.increment(&format!("release-marker/{}", call.transaction_id), 1)? > 1 {
        info!("transaction {} was already released", call.transaction_id);
        return Ok(Released {
            released: BTreeMap::new(),
            already_released: true,
        });
    }
    for (sku, qty) in &reservation.items {
        inventory.increment(&format!("released/{sku}"), *qty)?;
    }
    info!("released {:?} of order {}", reservation.items, order.id);
    Ok(Released {
        released: reservation.items,
        already_released: false,
    })
}

multiagents_worker::export_worker!(release);

// Tests run on the host target, against the SDK's simulated host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use multiagents_worker::testing;

    #[test]
    fn releases_once() {
        testing::reset();
        let call = Call::new("tx-1", "order-saga", "release-stock", 1);
        let inventory = state::open(INVENTORY_BUCKET).unwrap();
        let items = BTreeMap::from([("BOOK-1".to_owned(), 2u64)]);
        let reservation = Reservation {
            transaction_id: "tx-1".into(),
            items: items.clone(),
        };
        inventory.set_typed("reservation/tx-1", &reservation).unwrap();

        let first = release(&call, orders::sample_order()).unwrap();
        assert_eq!(first.released, items);
        let second = release(&call, orders::sample_order()).unwrap();
        assert!(second.already_released && second.released.is_empty());
        assert_eq!(testing::bucket(INVENTORY_BUCKET)["released/BOOK-1"], b"2");

        let other = Call::new("tx-never-reserved", "order-saga", "release-stock", 1);
        let none = release(&other, orders::sample_order()).unwrap();
        assert!(!none.already_released && none.released.is_empty());
    }
}
