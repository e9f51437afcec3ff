"""A hostile Python worker (a test fixture): reads a host file, or opens a
socket, as its input says. The host grants neither: the call must end with a
typed permission-denied error, whatever Python does about it. Asked for
nothing it answers, and asked to it raises a KeyError (a worker's bug).
Asked to fill, it writes keys into its state until the host refuses one,
and answers with the refusal's kind."""
import socket

from multiagents_worker import handler, state


@handler
def peek(call, value):
    if value.get("what") == "nothing":
        return {"ok": True}
    if value.get("what") == "bug":
        return value["absent"]
    if value.get("what") == "fill":
        bucket = state.open()
        for i in range(1000):
            try:
                bucket.set(f"key-{i}", b"x" * 100)
            except state.StateError as e:
                return {"refused": e.kind, "written": i}
        return {"refused": None, "written": 1000}
    if value.get("what") == "socket":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect(("127.0.0.1", 6379))
        return {"reached": "a socket"}
    with open("/etc/passwd", "rb") as f:
        return {"read": f.read(64)}
