"""Dagster as a service on loopback, for the end-to-end tests: a PostgreSQL server in a temporary
data directory, and the user-code gRPC server, ``dagster-webserver`` and ``dagster-daemon`` as
real processes over the production instance file ``deploy/dagster.yaml``.

The same processes as the README's "Run as a service" commands and as ``deploy/docker-compose.yaml``,
with free ports. Every process is started in a session of its own and stopped by its pid (its
process group: the run workers the code server spawns go with it).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from atra_pipeline.core.storage.paths import PROJECT_ROOT

INSTANCE_FILE = PROJECT_ROOT / "deploy" / "dagster.yaml"
LOCAL_WORKSPACE = PROJECT_ROOT / "deploy" / "local" / "workspace.yaml"
LOCATION = "atra_pipeline"
MODULE = "atra_pipeline.definitions"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all held open until all are chosen)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``postgres`` are: on PATH, or Debian's ``/usr/lib/postgresql/<major>/bin``."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def chromium_path() -> str | None:
    """Debian's Chromium (package ``chromium``), or another on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class ServiceDown(RuntimeError):
    """A process of the service exited: waiting longer cannot help."""


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.5,
               logs: Callable[[], str] = lambda: "") -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` (and the logs).
    Errors of a server that does not answer yet are retried; a dead process (:class:`ServiceDown`)
    or a failed assertion ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            if result := condition():
                return result
        except (ServiceDown, AssertionError):
            raise
        except Exception as exc:  # the server may not answer yet
            last_error = exc
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s (last error: {last_error!r})\n{logs()}")


class Processes:
    """Processes started in sessions of their own, logged to files, stopped by process group."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: dict[str, subprocess.Popen] = {}
        self.stop_signals: dict[str, int] = {}

    def start(self, name: str, args: list[str], env: dict[str, str], user: str | None = None,
              stop_signal: int = signal.SIGTERM) -> subprocess.Popen:
        """Start ``args`` in a new session (its pid is its process group), as ``user`` if given;
        ``stop_signal`` stops it, also when this process dies first."""
        with open(self.log_dir / f"{name}.log", "wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=PROJECT_ROOT, user=user, group=user,
                                       extra_groups=[] if user else None,
                                       preexec_fn=lambda: _die_with_parent(stop_signal))
        self.started[name] = process
        self.stop_signals[name] = stop_signal
        return process

    def check_alive(self) -> None:
        for name, process in self.started.items():
            if process.poll() is not None:
                raise ServiceDown(f"{name} exited with {process.returncode}\n{self.log(name)}")

    def log(self, name: str, tail: int = 6000) -> str:
        path = self.log_dir / f"{name}.log"
        return f"--- {name} ---\n" + (path.read_text(errors="replace")[-tail:] if path.exists() else "(no log)")

    def logs(self) -> str:
        return "\n".join(self.log(name) for name in self.started)

    def stop_all(self, grace_s: float = 10.0) -> dict[str, int]:
        """Stop every process group, newest first (the servers before the database): its stop
        signal, SIGKILL to the group after ``grace_s`` and to whatever is left in it (run workers).
        Returns the process groups, by name, that still exist afterwards (none, normally)."""
        left = {}
        for name, process in reversed(list(self.started.items())):
            try:
                if process.poll() is None:
                    process.send_signal(self.stop_signals[name])  # the leader shuts its own children down
                    try:
                        process.wait(grace_s)
                    except subprocess.TimeoutExpired:
                        _signal_group(process.pid, signal.SIGKILL)
                        process.wait(grace_s)
            finally:
                _signal_group(process.pid, signal.SIGKILL)  # children left behind in its group
                if not _group_gone(process.pid, grace_s):
                    left[name] = process.pid
        return left


# resolved once, here: a child forked from a threaded process must not load libraries itself
try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def _die_with_parent(sig: int) -> None:
    """In the child before exec: ``sig`` when the thread that started it ends, so a test process
    killed outright (a CI timeout) leaves no server behind."""
    if _PRCTL is not None:
        _PRCTL(1, int(sig))  # PR_SET_PDEATHSIG


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


class PostgresServer:
    """A PostgreSQL server on 127.0.0.1 in a new temporary data directory, password-authenticated,
    with the instance's role and database made as the README makes them: a login role that is
    not a superuser, owning its database (``createuser --pwprompt``, ``createdb --owner``).

    Run as the ``postgres`` user when this process is root (``initdb`` refuses root)."""

    SUPERUSER = "postgres"

    def __init__(self, processes: Processes, bin_dir: Path, port: int, user: str = "dagster", db: str = "dagster"):
        self.processes, self.bin_dir, self.port, self.user, self.db = processes, bin_dir, port, user, db
        self.password = secrets.token_hex(16)
        self.superuser_password = secrets.token_hex(16)
        self.run_as = "postgres" if os.geteuid() == 0 else None
        # not under pytest's tmp_path: its parents are private to root, and the server runs as postgres
        self.data_dir = Path(tempfile.mkdtemp(prefix="atra-pg-"))

    def env(self) -> dict[str, str]:
        """The instance's connection settings, as ``deploy/dagster.yaml`` reads them."""
        return {"DAGSTER_POSTGRES_HOST": "127.0.0.1", "DAGSTER_POSTGRES_PORT": str(self.port),
                "DAGSTER_POSTGRES_USER": self.user, "DAGSTER_POSTGRES_PASSWORD": self.password,
                "DAGSTER_POSTGRES_DB": self.db}

    def start(self) -> None:
        pwfile = self.data_dir / "pwfile"
        pwfile.write_text(self.superuser_password)
        cluster = self.data_dir / "cluster"
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            for path in (self.data_dir, pwfile):
                os.chown(path, account.pw_uid, account.pw_gid)
        base_env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
        initdb = subprocess.run([str(self.bin_dir / "initdb"), "-D", str(cluster), "-U", self.SUPERUSER,
                                 f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync"],
                                capture_output=True, text=True, env=base_env, user=self.run_as, group=self.run_as,
                                extra_groups=[] if self.run_as else None, cwd=self.data_dir)
        pwfile.unlink()
        if initdb.returncode:
            raise RuntimeError(f"initdb exited with {initdb.returncode}: {initdb.stderr[-3000:]}")
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)
        self.processes.start("postgres", [str(self.bin_dir / "postgres"), "-D", str(cluster), "-p", str(self.port),
                                          "-c", "listen_addresses=127.0.0.1",
                                          "-c", f"unix_socket_directories={self.data_dir}", "-c", "fsync=off"],
                             env=base_env, user=self.run_as, stop_signal=signal.SIGINT)
        wait_until(self._create_role_and_database, 60, "PostgreSQL accepting connections", logs=self.processes.logs)

    def _create_role_and_database(self) -> bool:
        import psycopg2
        from psycopg2 import sql

        self.processes.check_alive()
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.SUPERUSER, password=self.superuser_password,
                                dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(self.user)),
                            (self.password,))
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(self.db),
                                                                          sql.Identifier(self.user)))
        finally:
            conn.close()
        return True

    def remove_data(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


class DagsterService:
    """The user-code gRPC server, the webserver and the daemon over the instance in ``home``
    (``deploy/dagster.yaml`` copied unchanged), as in ``deploy/docker-compose.yaml``."""

    def __init__(self, processes: Processes, home: Path, env: dict[str, str], code_port: int, web_port: int):
        self.processes, self.home = processes, home
        self.code_port, self.web_port = code_port, web_port
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(INSTANCE_FILE, home / "dagster.yaml")
        # the README's deploy/local/workspace.yaml, on a free port
        workspace = yaml.safe_load(LOCAL_WORKSPACE.read_text())
        workspace["load_from"][0]["grpc_server"]["port"] = self.code_port
        self.workspace = home / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump(workspace))
        inherited = {k: v for k, v in os.environ.items() if k not in ("ATRA_STORAGE_ROOT", "ATRA_EXECUTOR")}
        self.env = {**inherited, **env, "DAGSTER_HOME": str(home),
                    "DAGSTER_COMPUTE_LOGS_DIR": str(home / "logs"), "PYTHONUNBUFFERED": "1"}
        self.url = f"http://127.0.0.1:{self.web_port}"

    def start(self, timeout_s: float = 180) -> None:
        bin_dir = Path(sys.executable).parent
        self.processes.start("code_server", [str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1",
                                             "-p", str(self.code_port), "-m", MODULE, "--location-name", LOCATION],
                             self.env)
        self.processes.start("webserver", [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1",
                                           "-p", str(self.web_port), "-w", str(self.workspace)], self.env)
        self.processes.start("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(self.workspace)], self.env)
        wait_until(lambda: self._up(), timeout_s, "dagster-webserver answering", logs=self.processes.logs)

    def _up(self) -> bool:
        self.processes.check_alive()
        with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as reply:
            return reply.status == 200
