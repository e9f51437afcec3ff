"""Typed handlers: a handler whose input parameter is annotated with a
dataclass gets its input as that dataclass (nested dataclasses, and lists
and optional fields of them, too), and a dataclass it returns is sent as a
map. Input that does not fit the class is ``Fatal``, naming the field.

The annotations are read when the module is imported (at build time, in a
component), never at call time.
"""

import dataclasses
import types
import typing

from ._host import Fatal


def input_type(f):
    """The dataclass ``f``'s second parameter is annotated with, if any."""
    try:
        hints = typing.get_type_hints(f)
    except Exception:  # annotations that do not resolve: an untyped handler
        return None
    params = [p for p in f.__code__.co_varnames[: f.__code__.co_argcount]]
    if len(params) < 2:
        return None
    cls = hints.get(params[1])
    return cls if dataclasses.is_dataclass(cls) else None


def build(cls, value, where: str):
    """``value`` (decoded CBOR) as an instance of ``cls``."""
    if not isinstance(value, dict):
        raise Fatal(f"{where}: expected a map for {cls.__name__}, got {type(value).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name in value:
            kwargs[field.name] = convert(hints.get(field.name), value[field.name], f"{where}.{field.name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise Fatal(f"{where}: missing field {field.name!r} of {cls.__name__}")
    return cls(**kwargs)


def convert(hint, value, where: str):
    """``value`` as the annotation ``hint`` says, for dataclasses (and
    lists and optionals of them); other values as they are."""
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (list, typing.List) and args and isinstance(value, list):
        return [convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType) and value is not None:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return convert(inner[0], value, where)
    return value


def plain(out):
    """What a handler returned, as CBOR can hold it (dataclasses as maps)."""
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return {k: plain(v) for k, v in dataclasses.asdict(out).items()}
    if isinstance(out, list):
        return [plain(v) for v in out]
    if isinstance(out, dict):
        return {k: plain(v) for k, v in out.items()}
    return out
