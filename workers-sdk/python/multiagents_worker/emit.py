"""Events to the runtime's event bus (the ``emit`` import): only to the
topics the registration permits (``emit = ["orders.*"]``)."""

from . import cbor
from ._host import Fatal, current

__all__ = ["EmitError", "emit"]


class EmitError(Exception):
    """The host refused or failed to publish (the topic not permitted, a limit)."""


def emit(topic: str, event) -> None:
    """Publishes ``event`` (bytes as they are, anything else as CBOR) on ``topic``.
    An event CBOR cannot hold is ``Fatal``; a refused one raises ``EmitError``."""
    if not isinstance(topic, str):
        raise TypeError(f"the topic is a str, not {type(topic).__name__}")
    if isinstance(event, (bytes, bytearray, memoryview)):
        payload = bytes(event)
    else:
        try:
            payload = cbor.dumps(event)
        except cbor.CborError as e:
            raise Fatal(f"cannot encode the event for {topic!r}: {e}") from None
    try:
        current().emit(topic, payload)
    except EmitError:
        raise
    except Exception as e:  # componentize-py raises Err(message)
        raise EmitError(str(getattr(e, "value", e))) from None
