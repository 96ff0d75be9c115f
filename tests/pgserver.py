"""A real PostgreSQL server for the tests: started on a free loopback port in a temporary directory, stopped
afterwards. Without the server's binaries the tests that need it skip, saying how to install them; under CI
(``CI=true``) they fail instead, because CI must run them."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "PostgreSQL server not installed: `apt-get install postgresql` (or run `bash .ci/setup` as root)"
# PostgreSQL refuses to run as root: as root, the server runs as this existing unprivileged user.
SERVER_USER = "nobody"
TABLES = ("atlas_jobs", "atlas_write_pacing", "atlas_tokens")


def server_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them out of PATH, under /usr/lib/postgresql/VERSION/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One throw-away cluster; ``url`` connects as the trusted superuser ``atlas``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="atlas-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://atlas@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.dir, user=SERVER_USER)

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, cwd=self.dir)

    def start(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "atlas", "-A", "trust", "--no-sync")
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c max_connections=300")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "-t", "60", "start")

    def stop(self) -> None:
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def reset(self) -> None:
        """Drop the bot's tables: the next test starts from an empty engine."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute("DROP TABLE IF EXISTS " + ", ".join(TABLES))


def require_postgres() -> Path:
    bin_dir = server_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests. {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    return bin_dir


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(require_postgres())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The shared engine's URL, with none of the bot's tables in it; they are dropped again afterwards."""
    postgres_server.reset()
    yield postgres_server.url
    postgres_server.reset()
