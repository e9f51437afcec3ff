"""A simulated host for unit tests (pytest) on the build machine: in-memory
state, settable config, captured logs and events, and ``call`` to run the
worker's ``@handler`` through CBOR as the runtime would.

    from multiagents_worker import testing
    import app

    def test_charges_once():
        host = testing.reset(config={"max_amount": "500"})
        out = testing.call(app.charge, {"amount": 300}, transaction_id="tx-1")
        assert host.bucket("payments")["payment/tx-1"]
"""

from . import _host, cbor
from ._host import Call, StateError
from ._registry import run
from .emit import EmitError

__all__ = ["SimulatedHost", "call", "reset"]


class _Bucket:
    def __init__(self, data: dict):
        self.data = data

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = bytes(value)

    def delete(self, key):
        self.data.pop(key, None)

    def exists(self, key):
        return key in self.data

    def increment(self, key, delta):
        raw = self.data.get(key, b"0")
        try:
            value = int(raw.decode("ascii")) + delta
        except (UnicodeDecodeError, ValueError):
            raise StateError("other", f"{key!r} is not a counter") from None
        self.data[key] = str(value).encode("ascii")
        return value

    def keys(self, cursor):
        return sorted(self.data), None


class SimulatedHost:
    """What a test inspects: ``buckets`` (name → key → bytes), ``settings``,
    ``logs`` (level, context, message), ``events`` (topic, payload bytes)."""

    def __init__(self, config=None, allowed_buckets=None, emit_topics=None):
        self.buckets = {}
        self.settings = dict(config or {})
        self.logs = []
        self.events = []
        self.allowed_buckets = allowed_buckets
        self.emit_topics = emit_topics

    def open(self, name):
        name = name or "default"
        if self.allowed_buckets is not None and name not in self.allowed_buckets:
            raise StateError("access-denied", f"open bucket {name!r}")
        return _Bucket(self.buckets.setdefault(name, {}))

    def config(self, key):
        return self.settings.get(key)

    def config_all(self):
        return dict(self.settings)

    def log(self, level, context, message):
        self.logs.append((level, context, message))

    def emit(self, topic, payload):
        if self.emit_topics is not None and not any(
            topic.startswith(t[:-1]) if t.endswith("*") else topic == t for t in self.emit_topics
        ):
            raise EmitError(f"topic {topic!r} is not permitted")
        self.events.append((topic, bytes(payload)))

    def bucket(self, name):
        """Bucket ``name``'s contents (key → bytes)."""
        return self.buckets.get(name, {})

    def value(self, bucket, key):
        """The CBOR value at ``key`` of ``bucket`` (``None`` when absent)."""
        raw = self.bucket(bucket).get(key)
        return None if raw is None else cbor.loads(raw)


def reset(config=None, allowed_buckets=None, emit_topics=None) -> SimulatedHost:
    """Installs a fresh simulated host and returns it."""
    host = SimulatedHost(config, allowed_buckets, emit_topics)
    _host.install(host)
    return host


def call(handler, value, transaction_id="tx-1", workflow="wf", step="step", attempt=1):
    """Runs ``handler`` on ``value`` as the runtime would: through CBOR both
    ways. Raises what the worker raises (``Retryable``, ``Fatal``)."""
    return cbor.loads(run(Call(transaction_id, workflow, step, attempt), cbor.dumps(value), handler))
