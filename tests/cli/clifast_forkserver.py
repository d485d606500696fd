"""A ``flowledger`` command on PATH that is a real process of its own, without a cold
start each time: a fork server imports flowledger once, and each command a shell runs is
a fork of it, with the shell's argv, environment, working directory and standard streams.

The README's session (tests/cli/test_readme.py) runs about thirty commands in one bash
script, as a reader types them. Each cold ``flowledger`` process spent ~0.6-1 s of CPU on
imports (3 s of wall time each on a loaded machine), most of the test's 72 s; what the
test checks is that each command works as written (bash parses it, exit codes, a worker
in the background killed by ``kill``, ``$(...)`` capture), which a forked process shows
just as well. A cold start is what tests/cli/test_lazy_imports.py and the subprocess
tests (``cli_process``) check.

How: ``forked_flowledger(folder)`` starts the server (this file as a script) and writes
``folder/flowledger``, a small ``python -IS`` client. The client hands its fds 0, 1 and 2,
argv, working directory and environment to the server over a Unix socket; the server
forks a child that calls ``flowledger.cli.entry`` (the console script's function) and
answers the child's pid, then how it ended. The client forwards the signals a shell
sends (``kill``, Ctrl-C) to the child and ends as the child did; if the client dies, the
server kills its child.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import marshal
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Imported once by the server, so that a command's fork does not: the command modules
#: (flowledger.cli.launch.COMMANDS) and what the README's commands went on to import
#: (storage, the worker, HTTP, schemas, rich's live tables). A command imports whatever
#: else it needs itself, as a cold process would.
PRELOAD = (
    "flowledger.cli",
    "flowledger.cli.launch",
    "flowledger.cli.common",
    "flowledger.cli.running",
    "flowledger.cli.dbinfo",
    "flowledger.cli.artifacts",
    "flowledger.cli.control",
    "flowledger.cli.executions",
    "flowledger.cli.logs",
    "flowledger.cli.prune",
    "flowledger.cli.entities",
    "flowledger.cli.jobs",
    "flowledger.cli.steps",
    "flowledger.cli.triggers",
    "flowledger.cli.workflows",
    "flowledger.runtime.engine",
    "flowledger.app.changes",
    "flowledger.app.entities",
    "flowledger.app.streams",
    "flowledger.app.timeline",
    "flowledger.storage.sqlite",
    "flowledger.storage.writes",
    "flowledger.steps.http_request",
    "flowledger.worker.worker",
    "jsonschema",
    "dateutil.tz",
    "rich.live",
    "rich.progress",
    "rich.syntax",
    "rich.table",
)

#: Signals a shell or a test sends to a command, passed on from the client to its child.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1)
#: What a test sends a client for a SIGKILL of its command's process (SIGKILL itself
#: cannot be caught and passed on): ``kill_hard``.
HARD_KILL = signal.SIGUSR2

CLIENT = """\
#!{python} -IS
# flowledger, forked from tests/cli/clifast_forkserver.py's server at {socket}
import marshal, os, signal, socket, sys

# Held until the command's pid is known, then passed on: none is lost, none ends this
# client alone (a test may signal it as soon as it has started it).
signal.pthread_sigmask(signal.SIG_BLOCK, {forwarded})
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect({socket!r})
payload = marshal.dumps((sys.argv[1:], os.getcwd(), dict(os.environ)))
socket.send_fds(conn, [len(payload).to_bytes(8, "big")], [0, 1, 2])
conn.sendall(payload)
answers = conn.makefile("rb")
pid = int(answers.readline())
def forward(number, frame):
    try:
        os.kill(pid, signal.SIGKILL if number == {hard_kill} else number)
    except ProcessLookupError:  # it has ended: its status is on its way
        pass
for number in {forwarded}:
    signal.signal(number, forward)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {forwarded})
ended = answers.readline().split()
if not ended:
    sys.exit("flowledger: the test's fork server went away")
how, value = ended[0], int(ended[1])
if how == b"signal":
    if value != signal.SIGKILL:
        signal.signal(value, signal.SIG_DFL)
    os.kill(os.getpid(), value)
    sys.exit(128 + value)
sys.exit(value)
"""


@contextlib.contextmanager
def forked_flowledger(folder: Path, env: dict[str, str]) -> Iterator[Path]:
    """``folder`` holding a ``flowledger`` client of a fork server that runs while inside
    (started with ``env``: its PYTHONPATH decides which flowledger it imports)."""
    folder.mkdir(parents=True, exist_ok=True)
    address = str(folder / "forks.sock")
    server = subprocess.Popen(
        [sys.executable, __file__, address],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        # It says "ready" after its imports, once it listens; generous for a loaded machine.
        waited, _, _ = select.select([server.stdout], [], [], 120)
        ready = server.stdout.readline() if waited else "(nothing in 120 s)"
        assert ready == "ready\n", f"the fork server did not start: {ready!r}"
        client = folder / "flowledger"
        forwarded = tuple(int(number) for number in (*FORWARDED, HARD_KILL))
        client.write_text(
            CLIENT.format(
                python=sys.executable,
                socket=address,
                forwarded=forwarded,
                hard_kill=int(HARD_KILL),
            )
        )
        client.chmod(0o755)
        yield folder
    finally:
        server.terminate()
        server.wait(timeout=60)
        server.stdout.close()


def kill_hard(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the command a client started, and wait: the command's process is dead and
    reaped once this returns (the client ends killed by SIGKILL too). Only in the client's
    first milliseconds, before its interpreter runs a line, does the signal end the client
    alone; the server then kills the command, if it had forked it, a moment later."""
    process.send_signal(HARD_KILL)
    process.wait()


def _serve(address: str) -> None:
    sys.path[0] = str(Path(sys.executable).parent)  # as the console script's, not tests/cli
    for name in PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # what the imports made stays shared with the forks (copy-on-write)
    assert threading.active_count() == 1, "a fork of a process with threads is unsafe"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, client)
    clients: dict[socket.socket, int] = {}  # client -> its child's pid

    def stop(number: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    try:
                        pid = _fork(conn, listener, selector)
                    except (OSError, EOFError, ValueError):  # it ended before it asked
                        conn.close()
                        continue
                    pidfd = os.pidfd_open(pid)
                    children[pidfd] = (pid, conn)
                    clients[conn] = pid
                    selector.register(pidfd, selectors.EVENT_READ)
                    selector.register(conn, selectors.EVENT_READ)  # readable: client gone
                    with contextlib.suppress(OSError):  # if it has gone, that says so
                        conn.sendall(f"{pid}\n".encode())
                elif isinstance(key.fileobj, int):  # a child ended
                    pidfd = key.fileobj
                    pid, conn = children.pop(pidfd)
                    selector.unregister(pidfd)
                    os.close(pidfd)
                    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                    ended = f"signal {-code}" if code < 0 else f"exit {code}"
                    with contextlib.suppress(OSError):
                        conn.sendall(f"{ended}\n".encode())
                    with contextlib.suppress(KeyError):  # unless its client had died
                        selector.unregister(conn)
                    clients.pop(conn, None)
                    conn.close()
                elif key.fileobj in clients:  # its client died first: the child goes too
                    conn = key.fileobj  # type: ignore[assignment]
                    with contextlib.suppress(KeyError, ValueError):
                        selector.unregister(conn)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(clients[conn], signal.SIGKILL)
    finally:
        for pid, _ in children.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _fork(conn: socket.socket, listener: socket.socket, selector: selectors.BaseSelector) -> int:
    """Read a client's request and fork its command; the parent gets the child's pid."""
    head, fds, _, _ = socket.recv_fds(conn, 8, 3)
    if len(head) != 8 or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise EOFError("the client ended before its request")
    size = int.from_bytes(head, "big")
    payload = b""
    while len(payload) < size:
        more = conn.recv(size - len(payload))
        if not more:
            for fd in fds:
                os.close(fd)
            raise EOFError("the client ended in its request")
        payload += more
    args, cwd, env = marshal.loads(payload)
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        selector.close()
        listener.close()
        conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 1 << 16)  # the server's sockets and the other clients' streams
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        import time

        time.tzset()
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own streams
        sys.stdout = open(1, "w", 1 if os.isatty(1) else -1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", 1, errors="backslashreplace", closefd=False)  # noqa: SIM115
        sys.argv = [str(Path(sys.executable).parent / "flowledger"), *args]
        code = _run_command()
    except BaseException:  # the fork's own set-up failed: said on the client's stderr
        traceback.print_exc()
    finally:
        os._exit(code)
    return 0  # not reached: the child ends above


def _run_command() -> int:
    """``flowledger.cli.entry`` as the console script runs it, and the interpreter's exit:
    its code, threads joined, atexit handlers, streams flushed."""
    from flowledger.cli import entry

    code = 0
    try:
        entry()
    except SystemExit as exc:  # as the interpreter: no code 0, a number itself, text 1
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # non-daemon threads, as at exit
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # as the interpreter: said on stderr, and exit 120
        sys.stderr.write("Exception ignored in: <stdout>\n")
        traceback.print_exc()
        code = code or 120
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    return code


if __name__ == "__main__":
    _serve(sys.argv[1])
