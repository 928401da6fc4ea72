"""``Database.read_within``: a local read that outlasts its budget is interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from klinika.db import Database, OverBudget

#: Counts to a hundred million: seconds of SQLite's work, far beyond any budget below.
ENDLESS = sa.text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000) "
    "SELECT count(*) FROM c"
)


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'index.sqlite'}")


def test_a_read_beyond_its_budget_is_interrupted_and_the_engine_reads_again(
    database: Database,
) -> None:
    with pytest.raises(OverBudget), database.read_within(0.01) as connection:
        connection.execute(ENDLESS).scalar_one()
    with database.reader.connect() as connection:  # nothing left behind on the connection
        assert connection.execute(sa.text("SELECT 41 + 1")).scalar_one() == 42


def test_a_read_within_its_budget_answers(database: Database) -> None:
    with database.read_within(10.0) as connection:
        assert connection.execute(sa.text("SELECT 42")).scalar_one() == 42


def test_other_errors_of_a_budgeted_read_are_not_taken_for_the_budget(database: Database) -> None:
    with pytest.raises(sa.exc.OperationalError), database.read_within(10.0) as connection:
        connection.execute(sa.text("SELECT * FROM no_such_table"))


def test_only_local_reads_take_a_budget() -> None:
    server = Database("postgresql+psycopg://klinika@127.0.0.1:1/klinika")  # never connected
    assert not server.local
    with pytest.raises(ValueError, match="local"), server.read_within(1.0):
        pass
