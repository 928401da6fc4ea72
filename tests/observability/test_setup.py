"""The logging setup in one process: text lines with ids, slots, settings that are refused."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from klinika.config import load_settings
from klinika.errors import ConfigError
from klinika.observability import configure_logging
from klinika.observability.logs import bind_request_id, claim_log_file, reset_request_id


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_text_lines_carry_the_request_id_and_a_second_setup_replaces_the_first(
    tmp_path: Path, restored_root: None
) -> None:
    log_file = tmp_path / "klinika.log"
    settings = load_settings(env={}, data_dir=tmp_path, log_file=log_file, log_stream="none")
    configure_logging(settings)
    configure_logging(settings)  # idempotent: our handlers are replaced, not doubled
    token = bind_request_id("req-7")
    try:
        logging.getLogger("klinika.test").warning("something for %s", "someone")
    finally:
        reset_request_id(token)
    logging.getLogger("klinika.test").info("outside a request")
    lines = log_file.read_text().splitlines()
    assert len(lines) == 2
    assert " WARNING klinika.test [req-7]: something for someone" in lines[0]
    assert lines[1].endswith(" INFO klinika.test: outside a request")


def test_a_slot_held_by_another_writer_is_skipped(tmp_path: Path) -> None:
    first, held = claim_log_file(tmp_path / "klinika.log")
    second, other = claim_log_file(tmp_path / "klinika.log")
    try:
        assert first == tmp_path / "klinika.log"
        assert second == tmp_path / "klinika-1.log"
    finally:
        os.close(held)
        os.close(other)
    again, descriptor = claim_log_file(tmp_path / "klinika.log")  # freed: taken again
    os.close(descriptor)
    assert again == first


@pytest.mark.parametrize(
    "setting",
    [
        {"log_format": "xml"},
        {"log_stream": "syslog"},
        {"log_level": "loud"},
        {"log_max_bytes": 10},
        {"metrics_token": "short"},
        {"metrics_port": 70000},
        {"backup_rpo_minutes": 0},
    ],
)
def test_bad_operations_settings_are_refused_at_start(tmp_path: Path, setting: dict) -> None:
    with pytest.raises(ConfigError):
        load_settings(env={}, data_dir=tmp_path, **setting)
