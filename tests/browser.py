"""Headless Chromium from Debian (``/usr/bin/chromium``) driven by Playwright; no browser is
ever downloaded. ``browser`` is one Chromium per test session; ``open_page`` gives a fresh
context (its own cookies) whose console and CSP violations are collected for assertions."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

CHROMIUM = os.environ.get("KLINIKA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # WebGL2 in software, for OHIF's volume viewports (MPR, 3D)
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]
ARTIFACTS = Path(
    os.environ.get("KLINIKA_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")
)


@dataclass
class BrowserPage:
    """A page plus what its console said."""

    page: object  # playwright.sync_api.Page
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]


OpenPage = Callable[..., BrowserPage]
#: The viewer installed by scripts/setup.sh (the demo's default cache folder).
CACHE_DIR = Path(__file__).parents[1] / "klinika-data" / "cache"


@pytest.fixture(scope="session")
def ohif_cache() -> Path:  # the folder to give servers as KLINIKA_CACHE_DIR
    """The viewer installed by ``klinika viewer install`` (scripts/setup.sh runs it first; this
    installs it when missing and otherwise only checks it is complete)."""
    from klinika.viewer.install import install

    install(CACHE_DIR)
    return CACHE_DIR


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    from playwright.sync_api import expect, sync_playwright

    # expect() waits 5 s by default: too short for a report PDF signed on a loaded machine.
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., BrowserPage]]:
    """``open_page(locale="en")``: a new browser context and page."""
    contexts = []

    def open_(
        locale: str = "en-US", viewport: tuple[int, int] = (1400, 900), **options: Any
    ) -> BrowserPage:
        context = browser.new_context(
            locale=locale, viewport={"width": viewport[0], "height": viewport[1]}, **options
        )
        contexts.append(context)
        page = context.new_page()
        result = BrowserPage(page)
        page.on("console", lambda message: result.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: result.errors.append(str(error)))
        return result

    yield open_
    for context in contexts:
        context.close()


def log_in(page: BrowserPage, base_url: str, username: str, password: str, path: str = "/") -> None:
    """Log in on the login page and land on ``path``."""
    page.page.goto(f"{base_url}/login?next={quote(path, safe='')}")
    page.page.fill("input[name=username]", username)
    page.page.fill("input[name=password]", password)
    page.page.click("button[type=submit]")
    page.page.wait_for_load_state()


def screenshot(page: BrowserPage, name: str) -> Path:
    """Save a PNG under test-artifacts/ (and return its path)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.page.screenshot(path=str(target), full_page=True)
    return target
