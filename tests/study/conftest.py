"""A real PostgreSQL server for the `trainlab search --storage postgresql://...` tests.

Debian's `postgresql` package (`make setup` installs it when root): the server is started once
per test session on a free loopback port, with its data directory and unix socket in a fresh
temporary directory, a password on TCP connections (so the URL carries one, as users' do), and
one database, `trainlab`; it is stopped (`pg_ctl stop -m fast`) and the directory removed when
the session ends, whether the tests passed or not. PostgreSQL refuses to run as root: as root
the commands run as the `postgres` user (`runuser`), otherwise as ourselves. Where none of
this is possible the tests that use the server skip, with one line saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "trainlab-test-pw"
DATABASE = "trainlab"


def _pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout), or None."""
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found.sort(key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else None


def _as_user() -> tuple[list[str], str | None]:
    """The command prefix that runs the server's tools and the user who owns its files:
    `runuser -u postgres --` and postgres as root, nothing and None (ourselves) otherwise."""
    if os.geteuid() != 0:
        return [], None
    return ["runuser", "-u", "postgres", "--"], "postgres"


def why_no_postgres() -> str | None:
    """One line saying why the server cannot be started here, or None."""
    if _pg_bin() is None:
        return ("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
                "`make setup` installs Debian's postgresql as root)")  # fmt: skip
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser: cannot start PostgreSQL as postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to start PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One throwaway cluster in `root` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.bin, (self.prefix, self.owner) = _pg_bin(), _as_user()
        self.root, self.data, self.port = root, root / "data", _free_port()

    def _run(self, tool: str, *args: str) -> None:
        """Run a PostgreSQL tool; its output becomes the error if it fails."""
        cmd = [*self.prefix, str(self.bin / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {(done.stderr or done.stdout).strip()[-2000:]}")

    def start(self) -> str:
        """initdb, start on the loopback port, create the database; return its URL."""
        if self.owner is not None:
            shutil.chown(self.root, self.owner, self.owner)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.owner is not None:
            shutil.chown(pwfile, self.owner, self.owner)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
        self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", "120",
                  "-l", str(self.root / "server.log"), "-o", options)  # fmt: skip
        self._run("createdb", "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                  DATABASE)  # fmt: skip
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        """Stop the server if it runs (fast: disconnect clients), then remove its files."""
        if (self.data / "postmaster.pid").is_file():
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL (with its password) of a fresh database on a throwaway PostgreSQL server."""
    why = why_no_postgres()
    if why is not None:
        pytest.skip(why)
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="trainlab-pg-")))
    try:
        url = server.start()
        yield url
    finally:
        server.stop()
