//! `refund-payment`: compensation of `charge-payment` — refunds what the
//! transaction was charged.
//!
//! Input: an [`orders::Order`] (for logging; what to refund is the payment
//! `charge-payment` recorded under the transaction id in bucket `payments`).
//! Output: `{ "refund_id", "payment_id", "amount", "already_refunded" }`, or
//! `{ "refund_id": null, ... }` when the transaction was never charged.
//!
//! Idempotent per transaction: a `refund-marker/<transaction id>` counter lets
//! exactly one call refund; it records `refund/<transaction id>` and bumps
//! `stats/refunds` / `stats/refunded_amount`.

use multiagents_worker::prelude::*;
use orders::{Order, PAYMENTS_BUCKET, Payment, stable_id};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Refund {
    refund_id: Option<String>,
    payment_id: Option<String>,
    amount: u64,
    already_refunded: bool,
}

fn refund(call: &Call, order: Order) -> Result<Refund, WorkerError> {
    let payments = state::open(PAYMENTS_BUCKET)?;
    let tx = &call.transaction_id;
    let Some(payment) = payments.get_typed::<Payment>(&format!("payment/{tx}"))? else {
        info!(
            "transaction {tx} (order {}) was never charged: nothing to refund",
            order.id
        );
        return Ok(Refund {
            refund_id: None,
            payment_id: None,
            amount: 0,
            already_refunded: false,
        });
    };
    if payments.increment(&format!("refund-marker/{tx}"), 1)? > 1 {
        if let Some(previous) = payments.get_typed::<Refund>(&format!("refund/{tx}"))? {
            return Ok(Refund {
                already_refunded: true,
                ..previous
            });
        }
        return Ok(Refund {
            refund_id: Some(stable_id("ref_", &[tx])),
            payment_id: Some(payment.payment_id),
            amount: payment.amount,
            already_refunded: true,
        });
    }
    let refund = Refund {
        refund_id: Some(stable_id("ref_", &[tx])),
        payment_id: Some(payment.payment_id.clone()),
        amount: payment.amount,
        already_refunded: false,
    };
    payments.set_typed(&format!("refund/{tx}"), &refund)?;
    payments.increment("stats/refunds", 1)?;
    payments.increment("stats/refunded_amount", payment.amount)?;
    info!(
        "refunded {} {} of payment {} (order {})",
        payment.amount, payment.currency, payment.payment_id, order.id
    );
    Ok(refund)
}

multiagents_worker::export_worker!(refund);

// Tests run on the host target, against the SDK's simulated host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use multiagents_worker::testing;

    #[test]
    fn refunds_once() {
        testing::reset();
        let payments = state::open(PAYMENTS_BUCKET).unwrap();
        let payment = Payment {
            payment_id: "pay_1".into(),
            amount: 399,
            currency: "EUR".into(),
        };
        payments.set_typed("payment/tx-1", &payment).unwrap();
        let call = Call::new("tx-1", "order-saga", "refund-payment", 1);

        let first = refund(&call, orders::sample_order()).unwrap();
        assert_eq!(first.amount, 399);
        assert!(!first.already_refunded);
        let second = refund(&call, orders::sample_order()).unwrap();
        assert!(second.already_refunded);
        assert_eq!(second.refund_id, first.refund_id);
        assert_eq!(testing::bucket(PAYMENTS_BUCKET)["stats/refunded_amount"], b"399");

        let never = Call::new("tx-2", "order-saga", "refund-payment", 1);
        assert_eq!(refund(&never, orders::sample_order()).unwrap().refund_id, None);
    }
}
