"""The embedded PostgreSQL + PostGIS cluster GridMap runs when no database URL is set."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from geo.store.settings import Settings

__all__ = [
    "EmbeddedError",
    "EmbeddedPostgres",
    "EmbeddedStatus",
]

_SERVICE_USER = "postgres"  # initdb refuses root; run the server as this user
_DB_USER = "gridmap"


class EmbeddedError(RuntimeError):
    """The embedded cluster could not be created, started or stopped."""


@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``gridmap db status`` reports about the embedded cluster."""

    running: bool
    initialised: bool
    data_dir: str
    port: int | None
    pid: int | None
    url: str | None
    log_file: str


@dataclass
class _State:
    port: int
    password: str
    user: str = _DB_USER
    database: str = "gridmap"


def _find_bindir(explicit: Path | None) -> Path:
    if explicit is not None:
        if not (explicit / "pg_ctl").exists():
            raise EmbeddedError(f"GRIDMAP_PG_BINDIR={explicit} holds no pg_ctl")
        return explicit
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: (
            int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return candidates[-1].parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).resolve().parent
    raise EmbeddedError(
        "PostgreSQL server binaries (pg_ctl, initdb) not found. Install them with "
        "`apt-get install postgresql-15-postgis-3` (the README's commands do this), "
        "or set GRIDMAP_DATABASE_URL to use an existing server."
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """A PostgreSQL + PostGIS cluster in a project data directory.

    The cluster listens on ``127.0.0.1`` only, on a free port chosen at first
    start (and re-chosen if that port is taken later), with password
    authentication. When GridMap runs as root the server runs as the
    unprivileged ``postgres`` user, because ``initdb`` refuses root.

    Parameters
    ----------
    settings
        Settings; ``data_dir``, ``pg_bindir``, ``pg_port`` and ``db_name`` are used.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = self._choose_root(Path(settings.data_dir).absolute())
        self.pg_root = self.root / "pg"
        self.pgdata = self.pg_root / "data"
        self.log_file = self.pg_root / "server.log"
        self.state_file = self.root / "embedded.json"

    # -- users and paths ---------------------------------------------------

    @staticmethod
    def _is_root() -> bool:
        return os.geteuid() == 0

    def _service_user(self) -> pwd.struct_passwd | None:
        if not self._is_root():
            return None
        try:
            return pwd.getpwnam(_SERVICE_USER)
        except KeyError as exc:
            raise EmbeddedError(
                f"running as root, GridMap runs PostgreSQL as the '{_SERVICE_USER}' "
                "user, which does not exist. Install the postgresql package "
                "(it creates that user) or run GridMap as a normal user."
            ) from exc

    def _choose_root(self, wanted: Path) -> Path:
        """Use ``wanted`` unless, as root, the service user cannot reach it."""
        if not self._is_root():
            return wanted
        probe = wanted
        while not probe.exists():
            probe = probe.parent
        if self._as_service(["test", "-x", str(probe)], check=False).returncode == 0:
            return wanted
        digest = hashlib.sha1(str(wanted).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"gridmap-{digest}"

    def _as_service(
        self, cmd: list[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        if self._is_root():
            cmd = ["runuser", "-u", _SERVICE_USER, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise EmbeddedError(
                f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                f"{proc.stdout}{proc.stderr}".strip()
            )
        return proc

    def _bin(self, name: str) -> str:
        return str(_find_bindir(self.settings.pg_bindir) / name)

    # -- state ---------------------------------------------------------------

    def _read_state(self) -> _State | None:
        if not self.state_file.exists():
            return None
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        return _State(**data)

    def _write_state(self, state: _State) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state)), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self.state_file.exists()

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL of the embedded cluster (it need not be running)."""
        state = self._read_state()
        if state is None:
            raise EmbeddedError(
                f"the embedded database in {self.root} is not initialised: "
                "run `gridmap db start`"
            )
        db = database or self.settings.db_name
        return (
            f"postgresql+psycopg://{state.user}:{state.password}"
            f"@127.0.0.1:{state.port}/{db}"
        )

    # -- lifecycle -----------------------------------------------------------

    def _pid(self) -> int | None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            first = pidfile.read_text().splitlines()[0]
            return int(first)
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        """True when the cluster's postmaster is alive and answering pg_ctl."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        proc = self._as_service(
            [self._bin("pg_ctl"), "status", "-D", str(self.pgdata)], check=False
        )
        return proc.returncode == 0

    def init(self) -> None:
        """Create the cluster (UTF-8, ``C.UTF-8`` locale) if it does not exist."""
        if self.initialised:
            return
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            if not (self.pgdata / "PG_VERSION").exists():
                raise EmbeddedError(
                    f"{self.pgdata} exists but holds no PostgreSQL cluster; "
                    "move it away and run `gridmap db start` again"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg_root.mkdir(parents=True, exist_ok=True)
        user = self._service_user()
        if user is not None:
            os.chown(self.pg_root, user.pw_uid, user.pw_gid)
        self.pg_root.chmod(0o700)
        state = self._read_state() or _State(
            port=self.settings.pg_port or _free_port(),
            password=secrets.token_urlsafe(24),
            database=self.settings.db_name,
        )
        if not (self.pgdata / "PG_VERSION").exists():
            with tempfile.NamedTemporaryFile("w", delete=False, dir=self.pg_root) as f:
                f.write(state.password + "\n")
                pwfile = f.name
            if user is not None:
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            try:
                self._as_service(
                    [
                        self._bin("initdb"),
                        "-D",
                        str(self.pgdata),
                        "-U",
                        state.user,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                    ]
                )
            finally:
                Path(pwfile).unlink(missing_ok=True)
            conf = self.pgdata / "postgresql.conf"
            extra = (
                "\n# --- GridMap embedded settings ---\n"
                "listen_addresses = '127.0.0.1'\n"
                "unix_socket_directories = ''\n"
                "shared_buffers = '256MB'\n"
                "work_mem = '32MB'\n"
                "maintenance_work_mem = '512MB'\n"
                "max_wal_size = '2GB'\n"
                "synchronous_commit = off\n"
                "max_connections = 100\n"
            )
            self._as_service(["sh", "-c", f"cat >> '{conf}' <<'EOF'{extra}EOF\n"])
        self._write_state(state)

    def _clear_stale_pidfile(self) -> None:
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        pid = self._pid()
        if pid is None or not _pid_alive(pid) or not self._is_postgres(pid):
            pidfile.unlink(missing_ok=True)

    @staticmethod
    def _is_postgres(pid: int) -> bool:
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return False
        return comm in {"postgres", "postmaster"}

    def start(self, *, timeout_s: float = 60.0) -> EmbeddedStatus:
        """Start the cluster; idempotent, and safe after a crash (stale pid file)."""
        self.init()
        if self.running():
            self._ensure_database()
            return self.status()
        self._clear_stale_pidfile()
        state = self._read_state()
        assert state is not None
        if not _port_free(state.port):
            state.port = self.settings.pg_port or _free_port()
            self._write_state(state)
        proc = self._as_service(
            [
                self._bin("pg_ctl"),
                "start",
                "-w",
                "-t",
                str(int(timeout_s)),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {state.port}",
            ],
            check=False,
        )
        if proc.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
            raise EmbeddedError(
                f"could not start the embedded PostgreSQL in {self.pgdata}:\n"
                f"{proc.stdout}{proc.stderr}\nlast lines of {self.log_file}:\n{tail}"
            )
        self._ensure_database()
        return self.status()

    def _ensure_database(self) -> None:
        import psycopg

        state = self._read_state()
        assert state is not None
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(
                    host="127.0.0.1",
                    port=state.port,
                    user=state.user,
                    password=state.password,
                    dbname="postgres",
                    autocommit=True,
                )
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with conn:
            for name in {state.database, self.settings.db_name}:
                create_database(conn, name)

    def stop(self) -> bool:
        """Stop the cluster (fast shutdown). Returns False if it was not running."""
        if not self.running():
            if self.pgdata.exists():
                self._clear_stale_pidfile()
            return False
        self._as_service(
            [self._bin("pg_ctl"), "stop", "-m", "fast", "-D", str(self.pgdata)]
        )
        return True

    def status(self) -> EmbeddedStatus:
        """Report whether the cluster runs, where it lives and its URL."""
        state = self._read_state()
        running = self.running()
        url = None
        if state is not None:
            url = self.url().replace(state.password, "***")
        return EmbeddedStatus(
            running=running,
            initialised=self.initialised,
            data_dir=str(self.pgdata),
            port=state.port if state else None,
            pid=self._pid() if running else None,
            url=url,
            log_file=str(self.log_file),
        )


def create_database(conn: object, name: str) -> bool:
    """Create database ``name`` with UTF-8 encoding and ``C.UTF-8`` ctype if missing.

    ``conn`` is an autocommit psycopg connection to a maintenance database.
    Returns True if the database was created.
    """
    from psycopg import sql

    cur = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))  # type: ignore[attr-defined]
    if cur.fetchone():
        return False
    conn.execute(  # type: ignore[attr-defined]
        sql.SQL(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        ).format(sql.Identifier(name))
    )
    return True
