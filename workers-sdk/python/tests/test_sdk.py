"""The SDK against its simulated host: the handler's CBOR path, state,
config, logs, events and the errors a worker raises."""

import pytest

from multiagents_worker import Fatal, Retryable, _registry, cbor, config, emit, handler, log, state, testing
from multiagents_worker.emit import EmitError
from multiagents_worker.state import StateError


@pytest.fixture(autouse=True)
def fresh_handler():
    _registry._handler = None
    yield
    _registry._handler = None


def test_a_handler_gets_decoded_input_and_its_output_is_encoded():
    @handler
    def double(call, value):
        return {"n": value["n"] * 2, "tx": call.transaction_id, "attempt": call.attempt}

    testing.reset()
    assert testing.call(double, {"n": 21}, transaction_id="tx-9", attempt=3) == {"n": 42, "tx": "tx-9", "attempt": 3}


def test_a_worker_has_one_handler_and_must_have_one():
    with pytest.raises(RuntimeError, match="no @handler"):
        _registry.registered()

    @handler
    def one(call, value):
        return value

    with pytest.raises(RuntimeError, match="already"):

        @handler
        def two(call, value):
            return value


def test_bad_input_and_unencodable_output_are_fatal():
    @handler
    def returns_a_set(call, value):
        return {1, 2}

    testing.reset()
    call = testing.Call("tx", "wf", "s", 1)
    with pytest.raises(Fatal, match="not CBOR"):
        _registry.run(call, b"\xff")
    with pytest.raises(Fatal, match="cannot be CBOR"):
        _registry.run(call, cbor.dumps({}))


def test_state_values_counters_and_keys():
    host = testing.reset()
    b = state.open("payments")
    assert b.get_value("k") is None
    b.set_value("k", {"amount": 5})
    assert b.get_value("k") == {"amount": 5}
    assert host.value("payments", "k") == {"amount": 5}
    assert b.increment("n") == 1 and b.increment("n", 4) == 5 and b.counter("n") == 5
    assert host.bucket("payments")["n"] == b"5", "counters are decimal ASCII, as the host keeps them"
    assert sorted(b.keys()) == ["k", "n"]
    b.delete("k")
    assert not b.exists("k")
    with pytest.raises(ValueError):
        b.increment("n", -1)
    b.set("raw", b"\xff")
    with pytest.raises(StateError, match="not CBOR"):
        b.get_value("raw")


def test_buckets_outside_the_grant_are_refused():
    testing.reset(allowed_buckets=["payments"])
    with pytest.raises(StateError) as e:
        state.open("secrets")
    assert e.value.kind == "access-denied"


def test_config_logs_and_events():
    host = testing.reset(config={"max_amount": "500"}, emit_topics=["orders.*"])
    assert config.get("max_amount") == "500" and config.get("absent", "d") == "d"
    assert config.all() == {"max_amount": "500"}
    log.info("charged", context="payments")
    assert host.logs == [("info", "payments", "charged")]
    emit("orders.shipped", {"id": "o-1"})
    assert host.events == [("orders.shipped", cbor.dumps({"id": "o-1"}))]
    with pytest.raises(EmitError, match="not permitted"):
        emit("billing.charged", b"x")


def test_errors_carry_their_kind():
    assert Retryable("later").retryable and not Fatal("no").retryable
    assert Fatal("no").message == "no"


def test_uncaught_state_and_emit_failures_become_worker_errors():
    @handler
    def greedy(call, value):
        if value == "emit":
            emit("billing.charged", b"x")
        state.open("secrets")
        return value

    testing.reset(allowed_buckets=["payments"], emit_topics=["orders.*"])
    with pytest.raises(Fatal, match="access-denied"):
        testing.call(greedy, "open")
    with pytest.raises(Retryable, match="emit refused"):
        testing.call(greedy, "emit")


def test_values_that_cannot_be_encoded_are_fatal_and_raw_values_must_be_bytes():
    @handler
    def stores(call, value):
        if value == "state":
            state.open("b").set_value("k", {1, 2})
        if value == "raw":
            state.open("b").set("k", "text")
        emit("orders.x", {1, 2})

    testing.reset(emit_topics=["orders.*"])
    with pytest.raises(Fatal, match="codec"):
        testing.call(stores, "state")
    with pytest.raises(TypeError, match="state values are bytes"):
        testing.call(stores, "raw")
    with pytest.raises(Fatal, match="cannot encode the event"):
        testing.call(stores, "emit")


def test_a_state_store_failure_is_retryable():
    class Failing(testing.SimulatedHost):
        def open(self, name):
            raise StateError("other", "the store is down")

    from multiagents_worker import _host

    _host.install(Failing())

    @handler
    def reads(call, value):
        return state.open("b").get("k")

    with pytest.raises(Retryable, match="the store is down"):
        testing.call(reads, {})


def test_a_typed_handler_gets_dataclasses_and_may_return_one():
    from dataclasses import dataclass, field
    from typing import Optional

    @dataclass
    class Item:
        sku: str
        qty: int

    @dataclass
    class Order:
        id: str
        items: list[Item]
        note: Optional[str] = None
        tags: list = field(default_factory=list)

    @dataclass
    class Total:
        id: str
        units: int

    @handler
    def count(call, order: Order) -> Total:
        assert isinstance(order.items[0], Item)
        return Total(order.id, sum(i.qty for i in order.items))

    testing.reset()
    assert testing.call(count, {"id": "o-1", "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 3}]}) == {
        "id": "o-1",
        "units": 5,
    }
    with pytest.raises(Fatal, match=r"input.items\[0\]: missing field 'qty' of Item"):
        testing.call(count, {"id": "o-1", "items": [{"sku": "A"}]})
    with pytest.raises(Fatal, match="expected a map for Order"):
        testing.call(count, [1, 2])
