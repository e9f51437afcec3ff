"""A hostile Python worker (a test fixture): reads a host file, or opens a
socket, as its input says. The host grants neither: the call must end with a
typed permission-denied error, whatever Python does about it. Asked for
nothing it answers, and asked to it raises a KeyError (a worker's bug)."""
import socket

from multiagents_worker import handler


@handler
def peek(call, value):
    if value.get("what") == "nothing":
        return {"ok": True}
    if value.get("what") == "bug":
        return value["absent"]
    if value.get("what") == "socket":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect(("127.0.0.1", 6379))
        return {"reached": "a socket"}
    with open("/etc/passwd", "rb") as f:
        return {"read": f.read(64)}
