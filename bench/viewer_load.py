"""Time OHIF from navigation to the first drawn image, and to MPR fully drawn.

usage: viewer_load.py --url http://127.0.0.1:8042 --study UID [--login user:password]
                      [--runs 5] [--label klinika] [--out result.json]

Each run uses a fresh browser context (cold HTTP cache, as a user's first visit). "First
image" is the moment OHIF logs ``studyToFirstImage`` (its own timer, after the first frame
is rendered), measured from the start of navigation; "MPR drawn" is when all three viewports
of ``hangingprotocolId=mpr`` show an image (screenshots polled every 100 ms).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

from PIL import Image, ImageStat
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.browser import CHROMIUM, CHROMIUM_ARGS


def drawn(png: bytes) -> bool:
    image = Image.open(io.BytesIO(png)).convert("L")
    lit = sum(image.histogram()[41:]) / (image.width * image.height)
    return ImageStat.Stat(image).stddev[0] > 20 and lit > 0.03


def log_in(page: Page, url: str, credentials: str | None) -> None:
    if credentials:
        user, password = credentials.split(":", 1)
        page.goto(url + "/login?next=%2Fapi%2Fauth%2Fme")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()


def first_image(page: Page, url: str, study: str) -> float:
    seen: list[float] = []
    page.on(
        "console",
        lambda m: seen.append(time.monotonic()) if "studyToFirstImage" in m.text else None,
    )
    start = time.monotonic()
    page.goto(f"{url}/viewer?StudyInstanceUIDs={study}")
    deadline = start + 120
    while not seen:
        assert time.monotonic() < deadline, "no first image"
        page.wait_for_timeout(20)
    return seen[0] - start


def mpr_drawn(page: Page, url: str, study: str) -> float:
    start = time.monotonic()
    page.goto(f"{url}/viewer?StudyInstanceUIDs={study}&hangingprotocolId=mpr")
    panes = page.locator("[data-cy=viewport-pane]")
    deadline = start + 300
    while True:
        if panes.count() == 3 and all(drawn(panes.nth(i).screenshot()) for i in range(3)):
            return time.monotonic() - start
        assert time.monotonic() < deadline, "MPR not drawn"
        page.wait_for_timeout(100)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--login")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"first_image_s": [], "mpr_drawn_s": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(args.runs):
            for key, measure in (("first_image_s", first_image), ("mpr_drawn_s", mpr_drawn)):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                log_in(page, args.url, args.login)
                results[key].append(round(measure(page, args.url, args.study), 3))
                context.close()
        browser.close()
    summary = {
        "label": args.label,
        "runs": args.runs,
        **{f"{k}_median": statistics.median(v) for k, v in results.items()},
        **results,
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
