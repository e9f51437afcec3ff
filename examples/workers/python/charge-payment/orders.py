"""The order rules charge-payment needs, as the Rust `orders` crate has them."""
from multiagents_worker import Fatal


def total(order) -> int:
    """Sum of qty × unit_price (minor units); a non-positive quantity is fatal."""
    amount = 0
    for item in order.get("items", []):
        if item["qty"] <= 0:
            raise Fatal(f"order {order['id']}: quantity {item['qty']} of {item['sku']} is not positive")
        amount += item["qty"] * item["unit_price"]
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
