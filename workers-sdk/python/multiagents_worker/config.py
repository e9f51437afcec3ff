"""The worker's settings (``wasi:config``): the string table of its
registration (``[workers.<name>.config]``), read-only."""

from ._host import current

__all__ = ["all", "get"]


def get(key: str, default=None):
    """The setting ``key`` (a string), or ``default``."""
    value = current().config(key)
    return default if value is None else value


def all() -> dict:  # noqa: A001 - mirrors the WIT's get-all
    """Every setting."""
    return current().config_all()
