"""A throwaway PostgreSQL cluster from Debian's server binaries, and a database per test.

The archive, index, auth and audit suites run on SQLite and on PostgreSQL (the
``database_url`` fixture is parametrized over both).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_databases = itertools.count(1)


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_postgres(listen: str = "127.0.0.1", *, durable: bool = False) -> Iterator[str]:
    """``postgresql+psycopg://…`` of a throwaway cluster on ``listen`` and a free port (fsync
    off unless ``durable``, as benchmarks need it; every connection from ``listen``'s /16
    trusted)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    # not under pytest's tmp folder: that one is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="klinika-postgres-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [
            *as_postgres,
            f"{bin_dir}/initdb",
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "klinika",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    if listen != "127.0.0.1":  # initdb trusts loopback only
        network = ".".join(listen.split(".")[:2]) + ".0.0/16"
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {network} trust\n")
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses={listen} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off"
    subprocess.run(
        [
            *as_postgres,
            f"{bin_dir}/pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(root / "log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://klinika@{listen}:{port}"
    finally:
        subprocess.run(
            [*as_postgres, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """``postgresql+psycopg://…`` of a cluster on 127.0.0.1 and a free port (fsync off)."""
    with running_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return ""  # the default: index.sqlite in the data folder
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"klinika_test_{os.getpid()}_{next(_databases)}"
    plain = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain + "/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
