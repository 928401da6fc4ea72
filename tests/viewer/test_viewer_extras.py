"""Our additions to OHIF in headless Chromium (SwiftShader, no GPU): the Key image button adds
the image shown to the study's report (through an open editor, or the report API), a large
volume asks before it is ray-cast in a 3D layout, and a volume this machine can ray-cast (the
demo CT downsampled to 128×128) renders in OHIF's "3D only" layout."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from klinika.demo import generate_demo
from tests.browser import BrowserPage, OpenPage, log_in, screenshot
from tests.conftest import TEST_PASSWORD, LiveServer, start_server
from tests.conftest import wait_until as until
from tests.viewer.conftest import drawn

#: 72 slices of 512×512: 18.9 million voxels, above the warning's 16.8 million
LARGE_SLICES = 72
#: the same volume at 128×128 (1.2 million voxels): SwiftShader ray-casts it in seconds
SMALL_SIZE = 128
TIMEOUT = 150


def wait_until(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll twice a second; a page too busy to answer (ray-casting) counts as "not yet"."""
    until(condition, timeout, interval=0.5, ignoring=(PlaywrightTimeoutError,))


def downsample(files: list[Path], folder: Path) -> None:
    """The CT series as a new study with every 4th pixel of each row and column (pixel spacing
    four times larger), so that a software renderer can ray-cast it."""
    study_uid, series_uid = generate_uid(), generate_uid()
    folder.mkdir(parents=True)
    for path in files:
        dataset = pydicom.dcmread(path)
        step = dataset.Rows // SMALL_SIZE
        pixels = dataset.pixel_array[::step, ::step]
        dataset.Rows, dataset.Columns = pixels.shape
        dataset.PixelSpacing = [float(v) * step for v in dataset.PixelSpacing]
        dataset.PixelData = np.ascontiguousarray(pixels).tobytes()
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study_uid, series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.StudyDescription = "CT small volume"
        dataset.PatientID = "SMALL-3D"
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dataset.save_as(folder / path.name, enforce_file_format=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ohif_cache: Path) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("viewer-extras")
    live = start_server(
        root / "data",
        extra_env={"KLINIKA_CACHE_DIR": str(ohif_cache)},
        users={"irina": "doctor", "olga": "operator"},
    )
    files = generate_demo(root / "demo", ct_slices=LARGE_SLICES)
    ct = [f for f in files if pydicom.dcmread(f, stop_before_pixels=True).Modality == "CT"]
    downsample(ct, root / "small")
    for folder in (root / "demo", root / "small"):
        subprocess.run(
            [sys.executable, "-m", "klinika", "import", str(folder)],
            env=live.env,
            check=True,
            capture_output=True,
        )
    yield live
    live.stop()


def study_uid(server: LiveServer, description: str) -> str:
    studies = requests.get(
        server.dicomweb + "/studies",
        params={"StudyDescription": description},
        headers=server.headers,
        timeout=30,
    ).json()
    assert len(studies) == 1
    return str(studies[0]["0020000D"]["Value"][0])


def open_viewer(
    open_page: OpenPage,
    server: LiveServer,
    user: str,
    uid: str,
    viewport: tuple[int, int] = (1280, 800),
) -> BrowserPage:
    page = open_page(viewport=viewport)
    log_in(page, server.url, user, TEST_PASSWORD, path=f"/viewer?StudyInstanceUIDs={uid}")
    page.page.wait_for_selector("canvas.cornerstone-canvas", timeout=TIMEOUT * 1000)
    return page


def pane_drawn(page: BrowserPage) -> bool:
    panes = page.page.locator("[data-cy=viewport-pane]")
    return panes.count() == 1 and drawn(panes.first.screenshot(timeout=20_000))


def shown_image(page: BrowserPage) -> str:
    """The SOP Instance UID of the image in OHIF's active viewport."""
    image_id: str = page.page.evaluate(
        """() => {
          const { viewportGridService, cornerstoneViewportService } = window.services;
          const id = viewportGridService.getActiveViewportId();
          return cornerstoneViewportService.getCornerstoneViewport(id).getCurrentImageId();
        }"""
    )
    return image_id.split("/instances/")[1].split("/")[0]


def next_slice(page: BrowserPage, times: int) -> None:
    """Move down ``times`` slices with the arrow key, as a reader does."""
    for _ in range(times):
        before = shown_image(page)
        page.page.keyboard.press("ArrowDown")
        wait_until(lambda before=before: shown_image(page) != before, timeout=30)


def choose_layout(page: BrowserPage, name: str) -> None:
    page.page.locator("[data-cy=Layout] button").first.click()
    page.page.get_by_text(name, exact=True).click()


def key_images(server: LiveServer, uid: str) -> list[str]:
    report = requests.get(
        f"{server.url}/api/studies/{uid}/report", headers=server.headers, timeout=30
    ).json()
    return [image["sop_instance_uid"] for image in report["version"]["key_images"]]


@pytest.mark.timeout(300)
def test_the_key_image_button_adds_the_image_shown_with_or_without_an_open_editor(
    server: LiveServer, open_page: OpenPage
) -> None:
    uid = study_uid(server, "CT small volume")
    viewer = open_viewer(open_page, server, "irina", uid)
    page = viewer.page
    wait_until(lambda: pane_drawn(viewer))
    page.locator("canvas.cornerstone-canvas").first.click()
    first = shown_image(viewer)
    next_slice(viewer, 9)
    wanted = shown_image(viewer)
    assert wanted != first

    # no editor open: the draft is started through the report API
    page.click("#klinika-key-image")
    expect(page.locator("#klinika-toast")).to_contain_text("Key image added to the report")
    assert key_images(server, uid) == [wanted]

    # with the editor open (another tab), the editor takes the image into its own draft
    editor = page.context.new_page()
    editor.goto(f"{server.url}/reports/{uid}")
    expect(editor.locator("[data-testid=key-image-list] li")).to_have_count(1)
    page.bring_to_front()
    next_slice(viewer, 5)
    second = shown_image(viewer)
    assert second != wanted
    page.click("#klinika-key-image")
    expect(page.locator("#klinika-toast")).to_have_text("Key image added to the open report")
    expect(editor.locator("[data-testid=key-image-list] li")).to_have_count(2)
    expect(editor.locator("[data-testid=report-message]")).to_have_text("Draft saved")
    assert key_images(server, uid) == [wanted, second]
    screenshot(viewer, "viewer-key-image")
    assert viewer.errors == [] and viewer.csp_violations() == []


def test_operators_get_no_key_image_button(server: LiveServer, open_page: OpenPage) -> None:
    uid = study_uid(server, "CT small volume")
    viewer = open_viewer(open_page, server, "olga", uid)
    expect(viewer.page.locator("#klinika-bar")).to_be_visible()
    viewer.page.wait_for_timeout(1500)  # our script has had its chance to add the button
    assert viewer.page.locator("#klinika-key-image").count() == 0


@pytest.mark.timeout(300)
def test_a_large_volume_asks_before_3d_on_a_software_renderer(
    server: LiveServer, open_page: OpenPage
) -> None:
    uid = study_uid(server, "CT Chest Abdomen*")
    viewer = open_viewer(open_page, server, "irina", uid)
    page = viewer.page
    wait_until(lambda: pane_drawn(viewer))
    choose_layout(viewer, "3D only")
    warning = page.locator("#klinika-3d-warning")
    expect(warning).to_be_visible()
    text = warning.inner_text()
    assert "18.9 million voxels" in text and "SwiftShader" in text, text
    screenshot(viewer, "viewer-3d-warning")
    page.click("#klinika-3d-cancel")
    expect(warning).to_have_count(0)
    # nothing was loaded in 3D: still the one stack viewport
    assert page.locator("[data-cy=viewport-pane]").count() == 1
    assert not page.evaluate(
        "() => window.cornerstone.getRenderingEngines().some((engine) =>"
        " engine.getViewports().some((viewport) => viewport.type === 'volume3d'))"
    )
    assert viewer.errors == [] and viewer.csp_violations() == []


@pytest.mark.timeout(300)
def test_a_volume_this_machine_can_ray_cast_renders_in_the_3d_only_layout(
    server: LiveServer, open_page: OpenPage
) -> None:
    uid = study_uid(server, "CT small volume")
    # SwiftShader ray-casts every pixel of the pane: at 800×500 the 3-D view is drawn in about
    # 11 s, at 1280×800 in 37 s (the same volume, the same layout and toolbar)
    viewer = open_viewer(open_page, server, "irina", uid, viewport=(800, 500))
    page = viewer.page
    wait_until(lambda: pane_drawn(viewer))
    choose_layout(viewer, "3D only")
    wait_until(
        lambda: page.evaluate(
            "() => window.cornerstone.getRenderingEngines().some((engine) =>"
            " engine.getViewports().some((viewport) => viewport.type === 'volume3d'))"
        )
    )
    assert page.locator("#klinika-3d-warning").count() == 0  # small: no question asked
    wait_until(lambda: pane_drawn(viewer), timeout=240)
    screenshot(viewer, "viewer-3d-only")
    assert viewer.errors == [] and viewer.csp_violations() == []


VIEWER_WORDS = {
    "en": ("Key image", "Load this volume in 3D?"),
    "ru": ("Ключевое изображение", "Загрузить этот объём в 3D?"),
    "es": ("Imagen clave", "¿Cargar este volumen en 3D?"),
    "fr": ("Image clé", "Charger ce volume en 3D ?"),
    "de": ("Schlüsselbild", "Dieses Volumen in 3D laden?"),
}


@pytest.mark.parametrize("language", sorted(VIEWER_WORDS))
def test_the_key_image_button_and_the_3d_warning_speak_each_language(
    server: LiveServer, language: str
) -> None:
    from tests.conftest import login

    script = requests.get(
        f"{server.url}/app-config.js",
        params={"lang": language},
        headers=login(server.url, "irina"),
        timeout=30,
    ).text
    for word in VIEWER_WORDS[language]:
        assert word in script, (language, word)
    assert '"canWriteReport": true' in script
    assert "{voxels}" in script and "{renderer}" in script  # filled in by the script
