"""Warm Python for script() tasks with `preload`: import heavy modules once, fork per task.

    python cairn_preload.py serve SOCKET MODULE...     # one per flow process and preload list
    python -I -S cairn_preload.py run SOCKET FILE ARG... # one per task: what Cairn starts

`serve` imports the modules, listens on a Unix socket and prints one JSON line
({"ready": true, "failed": {module: error}}). `run` is the task's process as Cairn sees
it: it hands its stdin, stdout and stderr, its environment, working directory and
arguments to the server, which forks a child that runs FILE as __main__ with those, so
the task starts with the modules already imported. `run` exits with the child's exit
code (or dies of the child's signal); SIGTERM, SIGINT and SIGHUP sent to `run` are
passed to the child's process group. If `run` goes away (SIGKILL), the server kills the
child's group; if the server goes away, its children die with it (Linux). The server's stdin
is a pipe that only Cairn holds: at its end of file (Cairn died, kill -9 included) the server
kills its children's groups and exits.

POSIX and Python 3.9+ only (fork and SCM_RIGHTS): elsewhere the server exits before it is
ready and Cairn runs the task in a new interpreter. Standard library only.
"""

import json
import os
import select
import signal
import socket
import struct
import sys
import time

_HEADER = struct.Struct("!I")
_GRACE_SECONDS = 5.0


def _recv_exact(conn, n):
    chunks = []
    while n:
        chunk = conn.recv(min(n, 1 << 16))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _send(conn, message):
    try:
        conn.sendall((json.dumps(message) + "\n").encode())
    except OSError:
        pass  # the launcher is gone; its child is ended when its EOF is seen


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent():
    """Linux: this process gets SIGKILL when the server that forked it dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def serve(path, modules):
    """Imports `modules`, then forks a child per request. Returns (in the child) the request to run."""
    import importlib

    if not hasattr(socket, "send_fds") or not hasattr(os, "register_at_fork"):
        sys.stderr.write("cairn_preload needs Python 3.9 or later on a POSIX system (fork and descriptor passing); this is %s\n" % sys.version.split()[0])
        sys.exit(3)
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as error:  # noqa: BLE001 - reported to Cairn, which warns
            failed[name] = "%s: %s" % (type(error).__name__, error)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole terminal group; Cairn ends the server itself
    parent = os.getppid()
    lifeline = sys.stdin.fileno()
    os.set_blocking(lifeline, False)
    sys.stdout.write(json.dumps({"ready": True, "failed": failed}) + "\n")
    sys.stdout.flush()

    children = {}  # child pid -> its launcher's connection (None once the launcher is gone)
    lingering = {}  # process group of an ended child -> when to SIGKILL what is left of it
    while True:
        if stopping or os.getppid() != parent:
            for pid in children:
                _killpg(pid, signal.SIGKILL)
            for pgid in lingering:
                _killpg(pgid, signal.SIGKILL)
            try:
                os.unlink(path)
            except OSError:
                pass
            os._exit(0)
        try:
            launchers = [conn for conn in children.values() if conn is not None]
            readable = select.select([listener, wake_r, lifeline, *launchers], [], [], 1.0)[0]
        except InterruptedError:
            continue
        if lifeline in readable:
            try:
                if not os.read(lifeline, 512):
                    stopping.append(True)  # Cairn is gone: end everything at the top of the loop
                    continue
            except BlockingIOError:
                pass
            except OSError:
                stopping.append(True)
                continue
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        # Reap ended children and tell their launchers how they ended.
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            # What the child left running in its group is ended too: SIGTERM now, SIGKILL after a grace period.
            _killpg(pid, signal.SIGTERM)
            lingering[pid] = time.monotonic() + _GRACE_SECONDS
            if conn is not None:
                if os.WIFSIGNALED(status):
                    _send(conn, {"signal": os.WTERMSIG(status)})
                else:
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                conn.close()
        for pgid, deadline in list(lingering.items()):
            if time.monotonic() >= deadline:
                _killpg(pgid, signal.SIGKILL)
                del lingering[pgid]
        # A launcher that closed its connection was killed: end its child's group.
        for pid, conn in list(children.items()):
            if conn is None or conn not in readable:
                continue
            try:
                data = conn.recv(64)
            except OSError:
                data = b""
            if not data:
                children[pid] = None
                _killpg(pid, signal.SIGKILL)
                conn.close()
        if listener in readable:
            conn, _ = listener.accept()
            try:
                conn.settimeout(10)
                header, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
                if len(header) < _HEADER.size:
                    header += _recv_exact(conn, _HEADER.size - len(header))
                request = json.loads(_recv_exact(conn, _HEADER.unpack(header)[0]))
                conn.settimeout(None)
            except (OSError, ValueError, EOFError) as error:
                sys.stderr.write("cairn_preload: bad request: %s\n" % error)
                conn.close()
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                for fd in (wake_r, wake_w):
                    os.close(fd)
                listener.close()
                for other in children.values():
                    if other is not None:
                        other.close()
                conn.close()
                return request, fds
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child already did, or already ended
            for fd in fds:
                os.close(fd)
            children[pid] = conn
            _send(conn, {"pid": pid})


def run_child(request, fds):
    """In the forked child: become the task's process and run its file as __main__."""
    os.setpgid(0, 0)  # its own process group (the server sets it too, whichever runs first), which the launcher signals
    _die_with_parent()
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        if fd > 2:
            os.close(fd)
    _reseed()
    os.chdir(request["cwd"])
    env = request["env"]
    old_path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    new_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ.clear()
    os.environ.update(env)
    argv = request["argv"]
    script = os.path.abspath(argv[0])
    sys.argv = [script, *argv[1:]]
    sys.path[:] = [os.path.dirname(script), *new_path, *[p for p in sys.path[1:] if p not in old_path]]
    main = _main_module(script)
    code = 0
    try:
        with open(script, "rb") as source:
            exec(compile(source.read(), script, "exec", dont_inherit=True), main.__dict__)
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:  # noqa: BLE001 - printed like the interpreter does
        import traceback

        exc_type, exc, tb = sys.exc_info()
        first = tb
        while first is not None and first.tb_frame.f_code.co_filename != script:
            first = first.tb_next  # the traceback starts at the script, as when Python runs it
        traceback.print_exception(exc_type, exc, first or tb)
        del exc_type, exc, tb, first  # so that what the script left behind can be released below
        code = 1
    _exit(code)


def _reseed():
    """A forked child starts with a copy of the server's random state. The standard library's
    `random` reseeds itself after a fork; numpy's global generator does not, and without this
    every task would draw the same "random" numbers (a new interpreter seeds from the OS)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        try:
            numpy_random.seed()
        except Exception:  # noqa: BLE001
            pass


def _main_module(script):
    """A fresh __main__ for the script, as `python script.py` makes it."""
    import builtins
    import importlib.machinery
    import types

    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__cached__ = None
    main.__builtins__ = builtins
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
    sys.modules["__main__"] = main
    return main


def _exit(code):
    """Ends the child like the interpreter would, without tearing down the preloaded modules
    (that teardown costs ~0.5 s with pandas and scikit-learn loaded): non-daemon threads are
    joined, atexit handlers run, what the script left behind is collected (files flushed and
    closed) and stdio flushed; then os._exit. The same steps multiprocessing's children take."""
    import atexit
    import gc
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write("%s\n" % (code,))
        code = 1
    try:
        threading._shutdown()
    except Exception:  # noqa: BLE001
        pass
    atexit._run_exitfuncs()
    # Released in order, as at interpreter shutdown: a file the script left open is flushed and closed
    # by its own finalizer (a garbage collection alone may close its buffer before its text is flushed).
    sys.modules["__main__"].__dict__.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code & 0xFF)


def launch(path, argv):
    """The task's process: hands itself to the server and mirrors how the child ends."""
    child = []
    pending = []

    def forward(sig, _frame):
        if child:
            _killpg(child[0], sig)
        else:
            pending.append(sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as error:
        sys.stderr.write("cairn_preload: cannot reach the preload server at %s (%s)\n" % (path, error))
        return 70
    body = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [_HEADER.pack(len(body))], [0, 1, 2])
    conn.sendall(body)
    replies = conn.makefile("rb")
    for line in replies:
        message = json.loads(line)
        if "pid" in message:
            child.append(message["pid"])
            for sig in pending:
                _killpg(child[0], sig)
        elif "signal" in message:
            sig = message["signal"]
            # No handler can be set for SIGKILL (Python raises OSError), nor is one needed: it
            # always kills. The OOM killer sends it, so this is how a task that ran out of memory ends.
            if sig != signal.SIGKILL:
                signal.signal(sig, signal.SIG_DFL)
            os.kill(os.getpid(), sig)
            return 128 + sig
        else:
            return message["exit"]
    sys.stderr.write("cairn_preload: the preload server ended before the task did\n")
    return 70


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        run_child(*serve(sys.argv[2], sys.argv[3:]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        sys.exit(launch(sys.argv[2], sys.argv[3:]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
