"""One long-lived Python process that runs the documentation's code blocks for tests/test_docs.py.

Starting `subcell-hf` or `python -m ...` costs seconds here (torch and transformers are imported each time), and the
docs name a dozen such commands. So the bash blocks still run in bash (`bash -e`, globs, line continuations and
comments as a user's shell reads them), but `BASH_ENV` defines two shell functions first:

- `subcell-hf ARGS` (every console script of the package, read from its entry points) and
- `python -m MODULE ARGS` / `python SCRIPT.py ARGS` / `python -c CODE ARGS`

which hand their argv, working folder and environment to this process over a Unix socket (`client`, a stdlib-only
script started with `python -S`, ~20 ms); it runs the entry point, module or script in process as the console
script would (same `sys.argv`, `SystemExit` code, stdout and stderr) and the function exits with that code. A call
whose environment differs from the one the server started with (a block that exports a variable first), or a
`python` form other than those three, runs the real program instead (`os.execvp`): only the start-up is saved,
never what a command sees.

The python blocks of a file run here too, in order, in one namespace per file.

    python -m tests.docs_runner serve SOCKET          # the server (the test starts it in the docs workspace)
    python -S tests/docs_runner.py SOCKET KIND ARGS   # the client behind the shell functions
"""

from __future__ import annotations

import json
import os
import socket
import sys

#: variables bash itself sets or changes: not a difference in what a command sees
SHELL_VARIABLES = {"PWD", "OLDPWD", "SHLVL", "_"}


# ------------------------------------------------------------------------------------------------ protocol
def _receive(connection: socket.socket) -> dict:
    chunks = []
    while chunk := connection.recv(1 << 16):
        chunks.append(chunk)
    return json.loads(b"".join(chunks) or b"null")


def request(socket_path: str, message: dict, timeout: float = 600) -> dict:
    """Send one request to the server and wait for its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(socket_path)
        connection.sendall(json.dumps(message).encode())
        connection.shutdown(socket.SHUT_WR)
        answer = _receive(connection)
    if answer is None:
        raise RuntimeError(f"the docs runner at {socket_path} closed the connection without an answer")
    return answer


def shell_functions(socket_path: str, scripts: list[str]) -> str:
    """The bash source that BASH_ENV names: one function per console script, and `python`."""
    client = f'"{sys.executable}" -S "{os.path.abspath(__file__)}" "{socket_path}"'
    lines = [f'{name}() {{ {client} script:{name} "$@"; }}' for name in scripts]
    lines.append(f'python() {{ {client} python "$@"; }}')
    return "\n".join(lines) + "\n"


def console_scripts(distribution: str = "subcell_hf") -> dict[str, str]:
    """name -> "module:function" of the distribution's console scripts (as pip installed them)."""
    from importlib.metadata import distribution as find

    return {ep.name: ep.value for ep in find(distribution).entry_points if ep.group == "console_scripts"}


# -------------------------------------------------------------------------------------------------- client
def client(socket_path: str, kind: str, args: list[str]) -> int:
    message = {"op": "run", "kind": kind, "args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
    answer = request(socket_path, message)
    if answer.get("fallback"):
        program = sys.executable if kind == "python" else kind.split(":", 1)[1]
        os.execvp(program, [program, *args])
    sys.stdout.write(answer["stdout"])
    sys.stderr.write(answer["stderr"])
    return answer["code"]


# -------------------------------------------------------------------------------------------------- server
class Server:
    def __init__(self):
        self.environment = dict(os.environ)
        self.namespaces: dict[str, dict] = {}
        self.scripts = console_scripts()

    def python(self, message: dict) -> dict:
        """Run python blocks in the namespace of their file; the first error ends the file's blocks."""
        import time
        import traceback

        namespace = self.namespaces.setdefault(message["name"], {"__name__": "__main__"})
        started = time.perf_counter()
        for block in message["blocks"]:
            try:
                exec(compile(block["code"], f"{message['name']}:{block['line']}", "exec"), namespace)
            except BaseException:
                return {"error": f"block at line {block['line']}:\n" + traceback.format_exc(),
                        "seconds": time.perf_counter() - started}
        return {"error": None, "seconds": time.perf_counter() - started}

    def _target(self, kind: str, args: list[str]):
        """(sys.argv, callable) for an in-process run, or None where only the real program does the same."""
        import importlib
        import runpy

        if kind.startswith("script:"):
            name = kind.split(":", 1)[1]
            if name not in self.scripts:
                return None
            module, function = self.scripts[name].split(":")
            return [name, *args], lambda: getattr(importlib.import_module(module), function)()
        if len(args) >= 2 and args[0] == "-m":
            return [args[1], *args[2:]], lambda: runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        if len(args) >= 2 and args[0] == "-c":
            return ["-c", *args[2:]], lambda: exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
        if args and args[0].endswith(".py"):
            return list(args), lambda: runpy.run_path(args[0], run_name="__main__")
        return None

    def run(self, message: dict) -> dict:
        import contextlib
        import io
        import traceback

        changed = {
            key for key in set(message["env"]) | set(self.environment)
            if message["env"].get(key) != self.environment.get(key) and key not in SHELL_VARIABLES
        }
        target = None if changed else self._target(message["kind"], message["args"])
        if target is None:
            return {"fallback": True}
        argv, call = target
        stdout, stderr = io.StringIO(), io.StringIO()
        saved_argv, saved_cwd, saved_stdin = sys.argv, os.getcwd(), sys.stdin
        sys.argv, sys.stdin = argv, io.StringIO("")
        os.chdir(message["cwd"])
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    returned = call()
                    code = returned if message["kind"].startswith("script:") else 0
                except SystemExit as stop:
                    code = stop.code
                except BaseException:
                    traceback.print_exc()
                    code = 1
        finally:
            sys.argv, sys.stdin = saved_argv, saved_stdin
            os.chdir(saved_cwd)
        if code is None:
            code = 0
        elif not isinstance(code, int):  # sys.exit("message"): printed, exit status 1
            stderr.write(f"{code}\n")
            code = 1
        return {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def serve(socket_path: str) -> None:
    server = Server()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(socket_path + ".binding")
        listener.listen(4)
        os.rename(socket_path + ".binding", socket_path)  # the name appears once connections are accepted
        print(f"docs runner {os.getpid()} listening on {socket_path}", flush=True)
        while True:
            connection, _ = listener.accept()
            with connection:
                message = _receive(connection)
                answer = server.python(message) if message["op"] == "python" else server.run(message)
                connection.sendall(json.dumps(answer).encode())
                sys.stdout.flush()
                sys.stderr.flush()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(client(sys.argv[1], sys.argv[2], sys.argv[3:]))
