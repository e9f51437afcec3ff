"""The component's export (``handle``), for componentize-py: the module
``multiagents worker build`` generates imports the worker's module (which
registers its ``@handler``) and then this ``WitWorld``.

Everything is imported here, when the component is built (componentize-py
snapshots the interpreter after its imports): an import at call time would
look for files, and the host grants none (the call would end with a
permission-denied error).
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import types

from . import _host
from ._component_host import ComponentHost
from ._host import Call, WorkerError
from ._registry import run

_host.install(ComponentHost())


def describe(e: BaseException) -> str:
    """``e``'s type, message and stack (file:line in function), innermost
    first, without reading any source file (the host grants none)."""
    frames = []
    tb = e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno} in {code.co_name}")
        tb = tb.tb_next
    where = " < ".join(reversed(frames))
    return f"{type(e).__name__}: {e}" + (f" (at {where})" if where else "")


class WitWorld(wit_world.WitWorld):
    def handle(self, call: types.CallInfo, input: bytes) -> bytes:
        info = Call(call.transaction_id, call.workflow, call.step, call.attempt)
        try:
            return run(info, input)
        except WorkerError as e:
            variant = types.WorkerError_Retryable if e.retryable else types.WorkerError_Fatal
            raise Err(variant(e.message)) from None
        except Exception as e:  # a bug in the worker: fatal, with where it happened
            # (Python's own traceback printer reads the source files, which
            # the host refuses: the error would be lost in a permission error.)
            raise Err(types.WorkerError_Fatal(f"unexpected {describe(e)}")) from None
