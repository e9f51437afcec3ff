"""Durable key-value state (``wasi:keyvalue``), in the worker's namespace.

``open(name)`` gives a bucket (``""`` is ``default``); values are bytes, or
CBOR with ``get_value``/``set_value`` (an encode failure is ``StateError``
``codec``). Counters are atomic across every
instance sharing the store. Failures raise ``StateError`` (its ``kind`` is
``no-such-store``, ``access-denied``, ``quota-exceeded`` (the namespace is
full: ``state_max_keys``/``state_max_mb``), ``codec`` or ``other``: the store
failed); one the worker does not catch fails the call, retryable for
``other`` and fatal for the rest.
"""

from . import cbor
from ._host import StateError, current

__all__ = ["Bucket", "StateError", "open"]


class Bucket:
    """An open bucket."""

    def __init__(self, name: str, inner):
        self.name = name
        self._inner = inner

    def get(self, key: str):
        """The bytes at ``key``, or ``None``."""
        return self._inner.get(key)

    def set(self, key: str, value: bytes) -> None:
        """Sets ``key`` to ``value`` (bytes, bytearray or memoryview)."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"state values are bytes (use set_value for other values), not {type(value).__name__}")
        self._inner.set(key, bytes(value))

    def delete(self, key: str) -> None:
        """Removes ``key`` (absent: nothing happens)."""
        self._inner.delete(key)

    def exists(self, key: str) -> bool:
        """Whether ``key`` has a value."""
        return self._inner.exists(key)

    def get_value(self, key: str, default=None):
        """The value at ``key`` decoded from CBOR, or ``default``."""
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return cbor.loads(raw)
        except cbor.CborError as e:
            raise StateError("codec", f"{key!r} in bucket {self.name!r} is not CBOR: {e}") from None

    def set_value(self, key: str, value) -> None:
        """Sets ``key`` to ``value`` encoded as CBOR (what the Rust SDK's
        ``get_typed`` decodes)."""
        try:
            raw = cbor.dumps(value)
        except cbor.CborError as e:
            raise StateError("codec", f"{key!r} in bucket {self.name!r}: {e}") from None
        self.set(key, raw)

    def increment(self, key: str, delta: int = 1) -> int:
        """Atomically adds ``delta`` (≥ 0) to the counter at ``key``; the new value."""
        if delta < 0:
            raise ValueError("increment takes a delta ≥ 0 (keep a second counter to subtract)")
        return self._inner.increment(key, delta)

    def counter(self, key: str) -> int:
        """The counter at ``key`` (0 when absent)."""
        return self.increment(key, 0)

    def keys(self):
        """Every key of the bucket (paged underneath)."""
        cursor = None
        seen = set()
        while True:
            page, cursor = self._inner.keys(cursor)
            yield from page
            if cursor is None or cursor in seen:
                return
            seen.add(cursor)


def open(name: str = "") -> Bucket:  # noqa: A001 - the WIT's name
    """Opens bucket ``name`` of the worker's namespace."""
    return Bucket(name or "default", current().open(name))
