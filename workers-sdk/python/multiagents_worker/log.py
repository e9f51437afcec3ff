"""Log records (``wasi:logging``), forwarded into the host's log with the
worker's name and the call's transaction id, step and attempt."""

from ._host import current

__all__ = ["critical", "debug", "error", "info", "trace", "warn"]


def _log(level: str, message, context: str) -> None:
    current().log(level, context, str(message))


def trace(message, context: str = "") -> None:
    _log("trace", message, context)


def debug(message, context: str = "") -> None:
    _log("debug", message, context)


def info(message, context: str = "") -> None:
    _log("info", message, context)


def warn(message, context: str = "") -> None:
    _log("warn", message, context)


def error(message, context: str = "") -> None:
    _log("error", message, context)


def critical(message, context: str = "") -> None:
    _log("critical", message, context)
