"""charge-payment against the simulated host: the Rust worker's tests, ported."""
import importlib.util
import sys
from pathlib import Path

import pytest

from multiagents_worker import Fatal, Retryable, testing

HERE = Path(__file__).resolve().parent.parent
# The worker's modules by path, under names of their own (other examples
# have an app.py too).
sys.path.insert(0, str(HERE))
_spec = importlib.util.spec_from_file_location("charge_payment_app", HERE / "app.py")
app = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(app)

ORDER = {
    "id": "o-1001", "customer": "c-42", "currency": "EUR",
    "items": [{"sku": "BOOK-1", "qty": 2, "unit_price": 150}, {"sku": "PEN-7", "qty": 1, "unit_price": 99}],
}


def test_charges_once_per_transaction():
    host = testing.reset()
    paid = testing.call(app.charge, ORDER, transaction_id="tx-1")["payment"]
    assert paid["amount"] == 399
    assert testing.call(app.charge, ORDER, transaction_id="tx-1")["payment"] == paid
    assert host.bucket("payments")["stats/charges"] == b"1"


def test_over_the_limit_is_fatal():
    host = testing.reset(config={"max_amount": "300"})
    with pytest.raises(Fatal, match="above the limit of 300"):
        testing.call(app.charge, ORDER)
    assert "payment/tx-1" not in host.bucket("payments")


def test_simulated_gateway_failures_are_retryable():
    testing.reset(config={"fail_attempts": "2"})
    for attempt in (1, 2):
        with pytest.raises(Retryable):
            testing.call(app.charge, ORDER, attempt=attempt)
    assert testing.call(app.charge, ORDER, attempt=3)["payment"]["amount"] == 399


def test_what_is_not_an_order_or_a_number_is_fatal():
    testing.reset(config={"max_amount": "lots"})
    with pytest.raises(Fatal, match="not a whole number"):
        testing.call(app.charge, ORDER)
    testing.reset()
    with pytest.raises(Fatal, match="not an order"):
        testing.call(app.charge, {"id": "o-1"})
    bad = {**ORDER, "items": [{"sku": "X", "qty": 1, "unit_price": -5}]}
    with pytest.raises(Fatal, match="not a quantity and a price"):
        testing.call(app.charge, bad)
