"""Domain errors to HTTP statuses: the most specific class named in the table wins."""

from __future__ import annotations

import pytest

from klinika.auth.errors import UnknownUser
from klinika.errors import KlinikaError, NotFound
from klinika.web.errors import STATUS, status_of


@pytest.mark.parametrize("kind", list(STATUS))
def test_every_named_error_gets_its_own_status(kind: type[KlinikaError]) -> None:
    assert status_of(kind.__new__(kind)) == STATUS[kind]


def test_a_subclass_with_its_own_entry_wins_over_its_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class StudyGone(NotFound):
        """Named after its base in the table, so a first-match lookup would say 404."""

    monkeypatch.setitem(STATUS, StudyGone, 410)
    assert status_of(StudyGone("gone")) == 410
    assert status_of(NotFound("missing")) == 404


def test_an_unnamed_subclass_takes_its_nearest_named_base() -> None:
    assert status_of(UnknownUser("nobody")) == 404
    assert status_of(KlinikaError("unexpected")) == 500
