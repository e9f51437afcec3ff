"""``@handler``: the one function a worker module exports, and the call
path from CBOR bytes to it and back."""

from . import _typed, cbor
from ._host import Call, Fatal, Retryable, StateError, WorkerError
from .emit import EmitError

_handler = None
# Handler → the dataclass its input is annotated with (read at import time).
_input_types = {}


def handler(f):
    """Makes ``f(call, input)`` this worker's step function. Annotate
    ``input`` with a dataclass to get it as one (see ``_typed``)."""
    global _handler
    if _handler is not None and _handler is not f:
        raise RuntimeError(f"a worker has one @handler: {_handler.__name__} is already it, not {f.__name__}")
    _handler = f
    _input_types[f] = _typed.input_type(f)
    return f


def registered():
    """The ``@handler`` function (``RuntimeError`` when there is none)."""
    if _handler is None:
        raise RuntimeError("no @handler in the worker module: decorate its step function with @handler")
    return _handler


def run(call: Call, payload: bytes, f=None) -> bytes:
    """Decodes, calls ``f`` (default: the ``@handler``), encodes.
    ``WorkerError`` passes through; undecodable input is ``Fatal``; a state
    failure not caught by the worker is ``Retryable`` when the store failed
    and ``Fatal`` otherwise (no grant, a malformed value); a refused emit is
    ``Retryable`` (as the Rust SDK's ``?`` converts them)."""
    try:
        value = cbor.loads(payload)
    except cbor.CborError as e:
        raise Fatal(f"the step's input is not CBOR: {e}") from None
    f = f or registered()
    cls = _input_types[f] if f in _input_types else _typed.input_type(f)
    if cls is not None:
        value = _typed.build(cls, value, "input")
    try:
        out = _typed.plain(f(call, value))
    except StateError as e:
        # As the Rust SDK: the store failing may heal, a missing grant or a
        # malformed value does not.
        raise (Retryable if e.kind == "other" else Fatal)(str(e)) from None
    except EmitError as e:
        raise Retryable(f"emit refused: {e}") from None
    try:
        return cbor.dumps(out)
    except cbor.CborError as e:
        raise Fatal(f"the step's output cannot be CBOR: {e}") from None


__all__ = ["WorkerError", "handler", "registered", "run"]
