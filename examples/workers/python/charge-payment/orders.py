"""The order rules charge-payment needs, as the Rust `orders` crate has them."""
from multiagents_worker import Fatal, config


def setting(key: str, default: int) -> int:
    """A whole-number setting; one that is not a number is fatal (as Rust's parse_or)."""
    raw = config.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise Fatal(f"config {key} = {raw!r} is not a whole number") from None


def total(order) -> int:
    """Sum of qty × unit_price (minor units). An order that is not one (no
    id or items, a price that is not a whole number ≥ 0) or a non-positive
    quantity is fatal, as the Rust worker's decoding and checks are."""
    if not isinstance(order, dict) or not isinstance(order.get("id"), str) or not isinstance(order.get("items"), list):
        raise Fatal("the input is not an order (an id and items are required)")
    amount = 0
    for item in order["items"]:
        qty, price = item.get("qty"), item.get("unit_price")
        if not isinstance(price, int) or isinstance(price, bool) or price < 0 or not isinstance(qty, int):
            raise Fatal(f"order {order['id']}: line {item!r} is not a quantity and a price in minor units")
        if qty <= 0:
            raise Fatal(f"order {order['id']}: quantity {qty} of {item.get('sku')} is not positive")
        amount += qty * price
    if amount >= 1 << 64:
        raise Fatal(f"order {order['id']}: total overflows")
    return amount


def stable_id(prefix: str, *parts: str) -> str:
    """FNV-1a over the parts (each followed by 0xff): the Rust `stable_id`."""
    h = 0xCBF29CE484222325
    for part in parts:
        for b in part.encode("utf-8") + b"\xff":
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{prefix}{h:016x}"


def payment_for(call, order, limit: int) -> dict:
    """The payment of `order` in transaction `call`; fatal above `limit` (the decline)."""
    amount = total(order)
    currency = order.get("currency", "EUR")
    if amount > limit:
        raise Fatal(f"payment declined: order {order['id']} totals {amount} {currency}, above the limit of {limit}")
    return {"payment_id": stable_id("pay_", call.transaction_id), "amount": amount, "currency": currency}


def record(payments, key: str, paid: dict) -> dict:
    """Stores `paid` under `key` and counts it in the bucket's stats; returns it."""
    payments.set_value(key, paid)
    payments.increment("stats/charges")
    payments.increment("stats/charged_amount", paid["amount"])
    return paid
