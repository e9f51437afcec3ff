//! `charge-payment`: charges the order's total.
//!
//! Input: an [`orders::Order`]. Output: the order with
//! [`payment`](orders::Order::payment) filled in (its `payment_id` is stable
//! per transaction). Compensated by `refund-payment`.
//!
//! Fails **fatal** when the total exceeds config `max_amount` (minor units,
//! default 1000) — a business rule, so the saga compensates at once. Config
//! `fail_attempts` (default 0) simulates a flaky gateway: attempts
//! `1..=fail_attempts` fail **retryable**, which lets hosts test retries.
//!
//! State (bucket `payments`, shared with `refund-payment`): the payment under
//! `payment/<transaction id>`, so a redelivered command returns the same
//! payment instead of charging twice, and counters `stats/charges` and
//! `stats/charged_amount` that tests use to prove no transaction was charged
//! twice.

use multiagents_worker::prelude::*;
use orders::{Order, PAYMENTS_BUCKET, Payment, stable_id};

fn charge(call: &Call, mut order: Order) -> Result<Order, WorkerError> {
    let fail_attempts: u32 = config::parse_or("fail_attempts", 0)?;
    if call.attempt <= fail_attempts {
        return Err(WorkerError::retryable(format!(
            "payment gateway unavailable (simulated: attempt {} of the first {fail_attempts} fails)",
            call.attempt
        )));
    }

    let payments = state::open(PAYMENTS_BUCKET)?;
    let key = format!("payment/{}", call.transaction_id);
    if let Some(existing) = payments.get_typed::<Payment>(&key)? {
        info!(
            "transaction {} was already charged: {}",
            call.transaction_id, existing.payment_id
        );
        order.payment = Some(existing);
        return Ok(order);
    }

    let amount = order.total().map_err(WorkerError::fatal)?;
    let max_amount: u64 = config::parse_or("max_amount", 1000)?;
    if amount > max_amount {
        return Err(WorkerError::fatal(format!(
            "payment declined: order {} totals {amount} {}, above the limit of {max_amount}",
            order.id, order.currency
        )));
    }

    let payment = Payment {
        payment_id: stable_id("pay_", &[&call.transaction_id]),
        amount,
        currency: order.currency.clone(),
    };
    payments.set_typed(&key, &payment)?;
    payments.increment("stats/charges", 1)?;
    payments.increment("stats/charged_amount", amount)?;
    info!(
        "charged {amount} {} for order {}: {}",
        payment.currency, order.id, payment.payment_id
    );
    order.payment = Some(payment);
    Ok(order)
}

multiagents_worker::export_worker!(charge);

// Tests run on the host target, against the SDK's simulated host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use multiagents_worker::testing;

    #[test]
    fn charges_once_per_transaction() {
        testing::reset();
        let call = Call::new("tx-1", "order-saga", "charge-payment", 1);
        let paid = charge(&call, orders::sample_order()).unwrap().payment.unwrap();
        assert_eq!(paid.amount, 399);
        let again = charge(&call, orders::sample_order()).unwrap().payment.unwrap();
        assert_eq!(again, paid);
        assert_eq!(testing::bucket(PAYMENTS_BUCKET)["stats/charges"], b"1");
    }

    #[test]
    fn over_the_limit_is_fatal() {
        testing::reset();
        testing::set_config("max_amount", "300");
        let call = Call::new("tx-1", "order-saga", "charge-payment", 1);
        let err = charge(&call, orders::sample_order()).unwrap_err();
        assert!(
            err.is_fatal() && err.message().contains("above the limit of 300"),
            "{err}"
        );
        assert!(!testing::bucket(PAYMENTS_BUCKET).contains_key("payment/tx-1"));
    }

    #[test]
    fn simulated_gateway_failures_are_retryable() {
        testing::reset();
        testing::set_config("fail_attempts", "2");
        for attempt in 1..=2 {
            let call = Call::new("tx-1", "order-saga", "charge-payment", attempt);
            assert!(charge(&call, orders::sample_order()).unwrap_err().is_retryable());
        }
        let call = Call::new("tx-1", "order-saga", "charge-payment", 3);
        assert!(charge(&call, orders::sample_order()).is_ok());
    }
}
