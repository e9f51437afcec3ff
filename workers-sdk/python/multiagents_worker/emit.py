"""Events to the runtime's event bus (the ``emit`` import): only to the
topics the registration permits (``emit = ["orders.*"]``)."""

from . import cbor
from ._host import current

__all__ = ["EmitError", "emit"]


class EmitError(Exception):
    """The host refused or failed to publish (the topic not permitted, a limit)."""


def emit(topic: str, event) -> None:
    """Publishes ``event`` (bytes as they are, anything else as CBOR) on ``topic``."""
    payload = bytes(event) if isinstance(event, (bytes, bytearray)) else cbor.dumps(event)
    try:
        current().emit(topic, payload)
    except EmitError:
        raise
    except Exception as e:  # componentize-py raises Err(message)
        raise EmitError(str(getattr(e, "value", e))) from None
