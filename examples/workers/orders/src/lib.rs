//! The data model of the example order saga, shared by its workers:
//!
//! ```text
//! validate-order → reserve-stock → charge-payment → ship-order
//!                  ↳ release-stock  ↳ refund-payment            (compensations)
//! ```
//!
//! Every forward step takes an [`Order`] and returns the same order with its
//! own section filled in ([`Order::reservation`], [`Order::payment`],
//! [`Order::shipment`]), so the saga works whether the orchestrator hands each
//! step the workflow input or the previous step's output (unknown fields are
//! ignored when decoding). Compensations take the order too, but act on what
//! their forward step recorded in state under the transaction id.
//!
//! Money is an integer amount of the currency's minor unit (cents).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The state bucket shared by `reserve-stock` and `release-stock`.
pub const INVENTORY_BUCKET: &str = "inventory";
/// The state bucket shared by `charge-payment` and `refund-payment`.
pub const PAYMENTS_BUCKET: &str = "payments";
/// The topic `ship-order` emits to.
pub const SHIPPED_TOPIC: &str = "orders.shipped";

/// A customer's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id, e.g. `o-1001`.
    pub id: String,
    /// The customer's id.
    pub customer: String,
    /// The ordered lines.
    pub items: Vec<LineItem>,
    /// ISO 4217 currency code of every price, e.g. `EUR`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Where to ship to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_to: Option<Address>,
    /// Filled in by `reserve-stock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
    /// Filled in by `charge-payment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<Payment>,
    /// Filled in by `ship-order`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
}

fn default_currency() -> String {
    "EUR".to_owned()
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// Stock-keeping unit.
    pub sku: String,
    /// How many; must be positive (signed so that a bad order can say -1 and
    /// be rejected by validation rather than by decoding).
    pub qty: i64,
    /// Price of one unit in minor units.
    pub unit_price: u64,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Recipient name.
    pub name: String,
    /// Street and number.
    pub street: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// Stock held for an order by `reserve-stock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The transaction that holds it.
    pub transaction_id: String,
    /// Units held per SKU.
    pub items: BTreeMap<String, u64>,
}

/// A payment taken by `charge-payment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment's id.
    pub payment_id: String,
    /// Amount charged in minor units.
    pub amount: u64,
    /// Currency code.
    pub currency: String,
}

/// A shipment created by `ship-order`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The carrier's tracking id.
    pub tracking_id: String,
    /// The carrier.
    pub carrier: String,
}

/// The event `ship-order` publishes on [`SHIPPED_TOPIC`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderShipped {
    /// The order.
    pub order_id: String,
    /// The transaction that shipped it.
    pub transaction_id: String,
    /// The carrier's tracking id.
    pub tracking_id: String,
    /// The carrier.
    pub carrier: String,
}

impl Order {
    /// Checks the order; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("order id is empty".to_owned());
        }
        if self.customer.trim().is_empty() {
            return Err(format!("order {}: customer is empty", self.id));
        }
        if self.items.is_empty() {
            return Err(format!("order {} has no items", self.id));
        }
        for (i, item) in self.items.iter().enumerate() {
            if item.sku.trim().is_empty() {
                return Err(format!("order {}: item {i} has an empty sku", self.id));
            }
            if item.qty <= 0 {
                return Err(format!(
                    "order {}: item {i} ({}) has non-positive quantity {}",
                    self.id, item.sku, item.qty
                ));
            }
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "order {}: currency {:?} is not an ISO 4217 code",
                self.id, self.currency
            ));
        }
        self.total().map(|_| ())
    }

    /// The sum of `qty * unit_price`, or an error on overflow or a
    /// non-positive quantity.
    pub fn total(&self) -> Result<u64, String> {
        self.items.iter().try_fold(0u64, |sum, item| {
            let qty = u64::try_from(item.qty).ok().filter(|q| *q > 0).ok_or_else(|| {
                format!(
                    "order {}: quantity {} of {} is not positive",
                    self.id, item.qty, item.sku
                )
            })?;
            qty.checked_mul(item.unit_price)
                .and_then(|line| sum.checked_add(line))
                .ok_or_else(|| format!("order {}: total overflows", self.id))
        })
    }

    /// Units per SKU, lines of the same SKU added up.
    pub fn quantities(&self) -> Result<BTreeMap<String, u64>, String> {
        let mut out = BTreeMap::new();
        for item in &self.items {
            let qty = u64::try_from(item.qty).ok().filter(|q| *q > 0).ok_or_else(|| {
                format!(
                    "order {}: quantity {} of {} is not positive",
                    self.id, item.qty, item.sku
                )
            })?;
            let slot = out.entry(item.sku.clone()).or_insert(0u64);
            *slot = slot
                .checked_add(qty)
                .ok_or_else(|| format!("order {}: quantity overflows", self.id))?;
        }
        Ok(out)
    }
}

/// A short, stable, id-like hash of `parts` (FNV-1a, 64 bit, hex): the same
/// transaction always gets the same payment or tracking id, which keeps
/// retries idempotent without a random source.
pub fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{prefix}{h:016x}")
}

/// A sample order for tests and examples.
pub fn sample_order() -> Order {
    Order {
        id: "o-1001".to_owned(),
        customer: "c-42".to_owned(),
        items: vec![
            LineItem {
                sku: "BOOK-1".to_owned(),
                qty: 2,
                unit_price: 150,
            },
            LineItem {
                sku: "PEN-7".to_owned(),
                qty: 1,
                unit_price: 99,
            },
        ],
        currency: "EUR".to_owned(),
        ship_to: Some(Address {
            name: "Ada Lovelace".to_owned(),
            street: "12 St James's Square".to_owned(),
            city: "London".to_owned(),
            postal_code: "SW1Y 4JH".to_owned(),
            country: "GB".to_owned(),
        }),
        reservation: None,
        payment: None,
        shipment: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_valid() {
        let o = sample_order();
        assert_eq!(o.validate(), Ok(()));
        assert_eq!(o.total(), Ok(399));
    }

    #[test]
    fn rejects_bad_orders() {
        let mut o = sample_order();
        o.items.clear();
        assert!(o.validate().unwrap_err().contains("no items"));
        let mut o = sample_order();
        o.items[1].qty = 0;
        assert!(o.validate().unwrap_err().contains("non-positive quantity 0"));
        let mut o = sample_order();
        o.items[0].unit_price = u64::MAX;
        assert!(o.validate().unwrap_err().contains("overflows"));
    }

    #[test]
    fn quantities_add_up_lines_of_one_sku() {
        let mut o = sample_order();
        o.items.push(LineItem {
            sku: "BOOK-1".to_owned(),
            qty: 3,
            unit_price: 150,
        });
        let q = o.quantities().unwrap();
        assert_eq!(q["BOOK-1"], 5);
        assert_eq!(q["PEN-7"], 1);
    }

    #[test]
    fn stable_ids_are_stable_and_distinct() {
        assert_eq!(stable_id("pay_", &["tx-1"]), stable_id("pay_", &["tx-1"]));
        assert_ne!(stable_id("pay_", &["tx-1"]), stable_id("pay_", &["tx-2"]));
        assert_ne!(stable_id("x", &["a", "bc"]), stable_id("x", &["ab", "c"]));
    }
}
