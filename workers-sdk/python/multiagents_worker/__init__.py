"""multiagents-worker for Python: write a workflow step as a WebAssembly component.

A worker is a module (``app.py``) with one function decorated ``@handler``::

    from multiagents_worker import handler, Fatal, config, state

    @handler
    def charge(call, order):
        limit = int(config.get("max_amount", "1000"))
        if order["amount"] > limit:
            raise Fatal(f"{order['amount']} exceeds the limit of {limit}")
        state.open("payments").set_value(f"payment/{call.transaction_id}", order)
        return {**order, "charged": True}

``multiagents worker build <dir>`` turns it into a component of the world
``multiagents:worker/worker@0.1.0`` (componentize-py). The function gets the
call's identity (``Call``) and the step's input decoded from CBOR (dicts,
lists, str, int, float, bytes, bool, None); what it returns is encoded back.

* ``raise Retryable(msg)``: a transient failure, retried by the step's policy;
* ``raise Fatal(msg)``: a permanent one (the saga compensates at once);
* any other exception is a bug: the step fails as fatal, the error naming
  the exception and where it was raised (file:line in function).

``state``, ``config``, ``log`` and ``emit`` wrap what the host grants
(``wasi:keyvalue``, ``wasi:config``, ``wasi:logging`` and ``emit``);
``multiagents_worker.testing`` is a simulated host for pytest.
"""

from . import cbor, config, log, state
from ._host import Call, Fatal, Retryable, WorkerError
from ._registry import handler
from .emit import emit

__all__ = [
    "Call",
    "Fatal",
    "Retryable",
    "WorkerError",
    "cbor",
    "config",
    "emit",
    "handler",
    "log",
    "state",
]
