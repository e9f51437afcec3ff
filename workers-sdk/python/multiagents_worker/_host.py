"""What a worker calls, and the host behind it: the component's imports
(``wit_world``, present only inside a built component) or, in tests, the
simulated host of ``multiagents_worker.testing``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """Which step command a call serves (the WIT ``call-info``)."""

    transaction_id: str
    workflow: str
    step: str
    attempt: int


class WorkerError(Exception):
    """A failure the worker reports (``Retryable`` or ``Fatal``)."""

    retryable = False

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)


class Retryable(WorkerError):
    """A transient failure: the host retries while the step's policy allows."""

    retryable = True


class Fatal(WorkerError):
    """A permanent failure: the step fails at once and the saga compensates."""


class StateError(Exception):
    """A state call failed: ``kind`` is ``no-such-store``, ``access-denied``,
    ``quota-exceeded`` (the write would take the worker's namespace past its
    quota, ``state_max_keys``/``state_max_mb``), ``codec`` (a value that is
    not CBOR) or ``other`` (the store failed)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


_current = None


def current():
    """The host: the component's imports, unless a simulated one is installed."""
    global _current
    if _current is None:
        from ._component_host import ComponentHost

        _current = ComponentHost()
    return _current


def install(host) -> None:
    """Uses ``host`` (``testing.SimulatedHost``) for every call from now on."""
    global _current
    _current = host
