"""Failed logins slow an attacker down without handing them a way to lock the real user out
(issue 14, findings 1, 4 and 9): exponential back-off per address and per account, a cap on
the account-wide lock, ``klinika user unlock``, a bound on password hashes at once, and a
disabled account that answers like a wrong password."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from klinika.audit.trail import AuditFilter
from klinika.auth import LoginThrottled, Unauthenticated
from klinika.config import load_settings
from klinika.runtime import Runtime
from tests.auth.conftest import PASSWORDS, SECRET, Installation
from tests.auth.test_accounts import klinika_cli
from tests.conftest import TEST_PASSWORD, LiveServer, start_server


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def clocked(
    install: Callable[..., Installation], **overrides: object
) -> tuple[Installation, Clock]:
    site = install(**overrides)
    clock = Clock()
    site.runtime.auth._clock = clock
    return site, clock


def fail(site: Installation, user: str, source: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Unauthenticated):
            site.runtime.auth.login(user, "wrong-password-1", source=source)


def retry_after(site: Installation, user: str, source: str) -> int:
    with pytest.raises(LoginThrottled) as refused:
        site.runtime.auth.login(user, PASSWORDS.get(user, "x"), source=source)
    return refused.value.retry_after


def test_each_further_lock_of_an_address_doubles(install: Callable[..., Installation]) -> None:
    site, clock = clocked(install, login_max_failures=3, login_lockout_seconds=60)
    fail(site, "doctor", "10.0.0.1", 3)
    assert retry_after(site, "doctor", "10.0.0.1") == 60
    clock.now += 61
    fail(site, "doctor", "10.0.0.1")
    assert retry_after(site, "doctor", "10.0.0.1") == 120
    clock.now += 121
    fail(site, "doctor", "10.0.0.1")
    assert retry_after(site, "doctor", "10.0.0.1") == 240
    # the owner, from another address, is not locked out
    assert site.runtime.auth.login("doctor", PASSWORDS["doctor"], source="10.0.0.2").token


def test_rotating_addresses_slow_the_account_down_but_never_lock_it_for_good(
    install: Callable[..., Installation],
) -> None:
    site, clock = clocked(
        install, login_max_failures=3, login_lockout_seconds=60, login_account_max_failures=6
    )
    for n in range(6):  # an attacker with many addresses, two tries each
        fail(site, "admin", f"10.0.1.{n // 2}")
    # the account is now slowed down from every address, the owner's new one included ...
    wait = retry_after(site, "admin", "192.0.2.50")
    assert 1 <= wait <= 60
    for _ in range(20):  # ... and keeps being, but never longer than login_lockout_seconds
        clock.now += wait + 1
        fail(site, "admin", f"10.0.2.{int(clock.now) % 250}")
        wait = retry_after(site, "admin", "192.0.2.50")
        assert wait <= 60
    clock.now += wait + 1
    assert site.runtime.auth.login("admin", PASSWORDS["admin"], source="192.0.2.50").token


def test_one_address_trying_many_accounts_is_slowed_down(
    install: Callable[..., Installation],
) -> None:
    site, _ = clocked(install, login_max_failures=3, login_account_max_failures=4)
    for user in ("nobody-1", "nobody-2", "nobody-3", "nobody-4"):
        fail(site, user, "10.0.3.3")
    assert retry_after(site, "doctor", "10.0.3.3") > 0  # a password spray from one address
    assert site.runtime.auth.login("doctor", PASSWORDS["doctor"], source="10.0.3.4").token


def test_user_unlock_lifts_every_lock_of_the_account(tmp_path: Path) -> None:
    env = {"KLINIKA_JWT_SECRET": SECRET, "KLINIKA_FSYNC": "false"}
    data = tmp_path / "data"
    with Runtime(load_settings(env=env, data_dir=data, login_max_failures=2)) as runtime:
        runtime.auth.create_user("irina", "doctor", PASSWORDS["doctor"])
        for source in ("10.0.0.1", "10.0.0.1"):
            with pytest.raises(Unauthenticated):
                runtime.auth.login("irina", "wrong-password-1", source=source)
        with pytest.raises(LoginThrottled):
            runtime.auth.login("irina", PASSWORDS["doctor"], source="10.0.0.1")
    result = CliRunner().invoke(
        klinika_cli(), ["--data-dir", str(data), "user", "unlock", "irina"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "irina unlocked" in result.output
    with Runtime(load_settings(env=env, data_dir=data, login_max_failures=2)) as runtime:
        assert runtime.auth.login("irina", PASSWORDS["doctor"], source="10.0.0.1").token
        events = [e.action for e in runtime.audit.search(AuditFilter(), limit=50)[0]]
    assert "user:unlock" in events
    unknown = CliRunner().invoke(
        klinika_cli(), ["--data-dir", str(data), "user", "unlock", "nobody"], env=env
    )
    assert unknown.exit_code != 0


def test_a_disabled_account_answers_exactly_like_a_wrong_password(site: Installation) -> None:
    admin = site.headers("admin")
    assert (
        site.client.patch("/api/users/doctor", json={"active": False}, headers=admin).status_code
        == 200
    )
    right = site.client.post(
        "/api/auth/login", json={"username": "doctor", "password": PASSWORDS["doctor"]}
    )
    wrong = site.client.post(
        "/api/auth/login", json={"username": "doctor", "password": "wrong-password-1"}
    )
    unknown = site.client.post(
        "/api/auth/login", json={"username": "nobody", "password": "wrong-password-1"}
    )
    assert right.status_code == wrong.status_code == unknown.status_code == 401
    assert right.json() == wrong.json() == unknown.json()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("hashes") / "data", users={"irina": "doctor"})
    yield live
    live.stop()


def test_sixteen_parallel_logins_do_not_take_a_hash_each_in_memory(server: LiveServer) -> None:
    """argon2id costs 64 MiB per hash: 16 at once took RSS from 275 MB to 1.3 GB. At most
    ``login_max_concurrent_hashes`` (2) run at once; the others wait (or get 429)."""
    pid = server.process.pid
    before = rss_kib(pid)
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()

    def login(n: int) -> int:
        body = {"username": "irina" if n % 2 else "tester", "password": TEST_PASSWORD}
        return requests.post(server.url + "/api/auth/login", json=body, timeout=60).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(login, range(16)))
    finally:
        done.set()
        sampler.join()
    assert set(statuses) <= {200, 429} and 200 in statuses, statuses
    grown_mib = (peak - before) / 1024
    assert grown_mib < 4 * 64, f"RSS grew {grown_mib:.0f} MiB during 16 logins"
