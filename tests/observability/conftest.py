"""Helpers of the observability tests: JSON log lines and scraped metrics, both parsed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveServer

METRICS_TOKEN = "a-metrics-token-for-the-tests-0123"


def server_log(server: LiveServer) -> Path:
    """Where :func:`tests.conftest.start_server` sends the server's output."""
    port = server.url.rsplit(":", 1)[1]
    return server.data_dir.parent / f"server-{port}.log"


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a log as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def wait_for_line(
    path: Path, wanted: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> dict[str, Any]:
    """The first JSON line of ``path`` that ``wanted`` accepts, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in json_lines(path) if wanted(line)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no such line in {path}"
        time.sleep(0.2)


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[tuple[str, tuple], float]:
    """The samples of a Prometheus text exposition: (name, sorted labels) -> value."""
    response = requests.get(url, headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    samples: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have)
    )


def bearer(token: str = METRICS_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
