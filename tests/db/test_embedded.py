"""The embedded PostGIS cluster: idempotent start, crash recovery, locale, external URL."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from geo.store.db import database_url, make_engine
from geo.store.embedded import EmbeddedPostgres
from geo.store.settings import Settings


@pytest.fixture
def cluster(tmp_path: Path):
    pg = EmbeddedPostgres(Settings(data_dir=tmp_path / "state"))
    yield pg
    pg.stop()
    shutil.rmtree(pg.root, ignore_errors=True)


def _wait_gone(pid: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} did not exit")


def test_start_is_idempotent_and_recovers_from_a_crash(
    cluster: EmbeddedPostgres,
) -> None:
    first = cluster.start()
    assert first.running and first.pid is not None and first.port is not None
    again = cluster.start()
    assert again.pid == first.pid, "a second start must not start a second server"

    # crash: kill the postmaster hard, leaving its pid file behind
    os.kill(first.pid, signal.SIGKILL)
    _wait_gone(first.pid)
    time.sleep(1.0)  # let the orphaned backends notice and exit
    assert (cluster.pgdata / "postmaster.pid").exists()
    assert not cluster.running()
    recovered = cluster.start()
    assert recovered.running and recovered.pid != first.pid

    engine = make_engine(cluster.url())
    with engine.connect() as conn:
        ctype, enc = conn.execute(
            text(
                "SELECT datctype, pg_encoding_to_char(encoding) FROM pg_database "
                "WHERE datname = current_database()"
            )
        ).one()
    engine.dispose()
    assert (ctype, enc) == ("C.UTF-8", "UTF8")


def test_stale_pid_file_of_a_dead_process_is_ignored(cluster: EmbeddedPostgres) -> None:
    cluster.start()
    assert cluster.stop() is True
    assert cluster.stop() is False
    pidfile = cluster.pgdata / "postmaster.pid"
    pidfile.write_text("999999\n" + str(cluster.pgdata) + "\n")
    status = cluster.start()
    assert status.running
    assert cluster.status().pid == status.pid != 999999


def test_external_url_never_touches_a_local_cluster(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://someone:secret@db.example:5432/gridmap",
        data_dir=tmp_path / "untouched",
    )
    url = database_url(settings)
    assert url.startswith("postgresql+psycopg://someone:secret@db.example:5432/")
    assert not (tmp_path / "untouched").exists()


def test_test_database_is_utf8_and_trigrams_see_chinese(engine) -> None:
    with engine.connect() as conn:
        ctype = conn.execute(
            text("SELECT datctype FROM pg_database WHERE datname = current_database()")
        ).scalar()
        trigrams = conn.execute(text("SELECT show_trgm('湖仁村')")).scalar()
        sim = conn.execute(
            text("SELECT similarity('高家镇湖仁村3组12号', '湖仁村3组12号')")
        ).scalar()
    assert ctype == "C.UTF-8"
    assert len(trigrams) > 0, "pg_trgm must index Chinese characters (UTF-8 LC_CTYPE)"
    assert sim >= 0.4
