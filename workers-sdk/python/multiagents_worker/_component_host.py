"""The host of a built component: the WIT imports, as componentize-py
binds them (``wit_world``). Imported only inside a component."""

from componentize_py_types import Err
from wit_world.imports import atomics, emit as wit_emit, logging, wasi_config_store, wasi_keyvalue_store

from ._host import StateError

_LEVELS = {
    "trace": logging.Level.TRACE,
    "debug": logging.Level.DEBUG,
    "info": logging.Level.INFO,
    "warn": logging.Level.WARN,
    "error": logging.Level.ERROR,
    "critical": logging.Level.CRITICAL,
}


def _state_error(e: Err, what: str) -> StateError:
    v = e.value
    if isinstance(v, wasi_keyvalue_store.Error_NoSuchStore):
        return StateError("no-such-store", what)
    if isinstance(v, wasi_keyvalue_store.Error_AccessDenied):
        return StateError("access-denied", what)
    message = str(getattr(v, "value", v))
    # The host's quota refusal comes as `other` with this prefix.
    kind = "quota-exceeded" if message.startswith("state quota exceeded") else "other"
    return StateError(kind, f"{what}: {message}")


class _Bucket:
    def __init__(self, name: str, inner):
        self.name = name
        self.inner = inner

    def _do(self, what: str, f, *args):
        try:
            return f(*args)
        except Err as e:
            raise _state_error(e, f"{what} in bucket {self.name!r}") from None

    def get(self, key: str):
        return self._do(f"get {key!r}", self.inner.get, key)

    def set(self, key: str, value: bytes) -> None:
        self._do(f"set {key!r}", self.inner.set, key, value)

    def delete(self, key: str) -> None:
        self._do(f"delete {key!r}", self.inner.delete, key)

    def exists(self, key: str) -> bool:
        return self._do(f"exists {key!r}", self.inner.exists, key)

    def increment(self, key: str, delta: int) -> int:
        return self._do(f"increment {key!r}", atomics.increment, self.inner, key, delta)

    def keys(self, cursor):
        page = self._do("list keys", self.inner.list_keys, cursor)
        return page.keys, page.cursor


class ComponentHost:
    def open(self, name: str):
        try:
            return _Bucket(name, wasi_keyvalue_store.open(name))
        except Err as e:
            raise _state_error(e, f"open bucket {name!r}") from None

    def config(self, key: str):
        try:
            return wasi_config_store.get(key)
        except Err as e:
            raise StateError("other", f"config {key!r}: {e.value}") from None

    def config_all(self):
        try:
            return dict(wasi_config_store.get_all())
        except Err as e:
            raise StateError("other", f"config: {e.value}") from None

    def log(self, level: str, context: str, message: str) -> None:
        logging.log(_LEVELS[level], context, message)

    def emit(self, topic: str, payload: bytes) -> None:
        wit_emit.emit(topic, payload)
