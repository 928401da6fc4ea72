"""Installing OHIF (integrity, atomicity) and serving it (paths, cache headers, CSP)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pytest
import requests

from klinika.i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, LANGUAGES, translator
from klinika.viewer.install import ViewerInstallError, install, load_installed, sri_sha512
from klinika.viewer.shell import ViewerShell
from tests.conftest import LiveServer

STATIC = Path(__file__).resolve().parents[2] / "klinika" / "web" / "pages" / "static"

INDEX = (
    b'<html><head><script>window.PUBLIC_URL="/"</script>'
    b'<script src="/app.js"></script></head></html>'
)


def make_tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_a_tarball_with_another_checksum_is_refused_and_nothing_is_installed(
    tmp_path: Path,
) -> None:
    tarball = make_tarball(tmp_path / "app.tgz", {"package/dist/index.html": INDEX})
    with pytest.raises(ViewerInstallError, match="integrity"):
        install(tmp_path / "cache", tarball=tarball)  # the pinned sha512 is OHIF's, not this
    assert load_installed(tmp_path / "cache") is None
    assert not any((tmp_path / "cache" / "ohif").iterdir())


def test_a_package_without_a_built_app_is_refused(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "app.tgz", {"package/README.md": b"no dist"})
    with pytest.raises(ViewerInstallError, match="no package/dist"):
        install(tmp_path / "cache", tarball=tarball, integrity=sri_sha512(tarball))


def test_install_unpacks_the_app_and_hashes_its_inline_scripts(tmp_path: Path) -> None:
    tarball = make_tarball(
        tmp_path / "app.tgz",
        {"package/dist/index.html": INDEX, "package/dist/app.0123456789abcdef.js": b"1"},
    )
    installed = install(tmp_path / "cache", tarball=tarball, integrity=sri_sha512(tarball))
    assert (installed.root / "app.0123456789abcdef.js").read_bytes() == b"1"
    expected = base64.b64encode(hashlib.sha256(b'window.PUBLIC_URL="/"').digest()).decode()
    assert installed.inline_script_hashes == (f"'sha256-{expected}'",)
    again = install(tmp_path / "cache", tarball=tmp_path / "missing.tgz")  # already there
    assert again == installed
    shell = ViewerShell(installed)
    assert shell.file("../../../etc/passwd") is None
    assert shell.file("/app.0123456789abcdef.js") is not None
    assert shell.is_immutable("app.0123456789abcdef.js")
    assert not shell.is_immutable("index.html")
    assert shell.is_route("viewer/dicomweb") and not shell.is_route("worklist")
    assert b'<script src="/static/viewer.js" defer></script></head>' in shell.index_html


def test_the_served_viewer_has_its_csp_and_cache_policy(viewer_server: LiveServer) -> None:
    session = requests.Session()
    session.headers.update(viewer_server.headers)
    page = session.get(viewer_server.url + "/viewer?StudyInstanceUIDs=1.2.3")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "'wasm-unsafe-eval'" in csp and "worker-src 'self' blob:" in csp
    assert "frame-ancestors 'none'" in csp and "'unsafe-eval'" not in csp
    inline = re.findall(rb"<script>(.*?)</script>", page.content, re.S)
    assert inline
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    bundle = re.search(rb'src="/(app\.bundle\.[0-9a-f]+\.js)"', page.content)
    assert bundle is not None
    asset = session.get(f"{viewer_server.url}/{bundle.group(1).decode()}")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert asset.headers["content-encoding"] == "gzip"  # compressed once, at install
    assert asset.headers["content-type"].endswith("javascript; charset=utf-8")
    plain = session.get(
        f"{viewer_server.url}/{bundle.group(1).decode()}", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers and plain.content == asset.content
    config = session.get(viewer_server.url + "/app-config.js")
    assert config.headers["cache-control"] == "no-store"
    assert "window.config" in config.text and '"qidoSupportsIncludeField": true' in config.text
    assert session.get(viewer_server.url + "/no-such-file.js").status_code == 404
    assert requests.get(viewer_server.url + "/manifest.json").status_code == 200


def test_the_viewer_language_switch_gets_the_server_language_list(live_server: LiveServer) -> None:
    script = requests.get(
        live_server.url + "/app-config.js",
        params={"lang": "ru"},
        headers=live_server.headers,
        timeout=30,
    ).text
    line = next(ln for ln in script.splitlines() if ln.startswith("window.klinika = "))
    klinika = json.loads(line.removeprefix("window.klinika = ").removesuffix(";"))
    automatic = translator("ru").gettext("Automatic (browser)")
    assert automatic != "Automatic (browser)"
    assert klinika["languages"] == [
        ["auto", automatic],
        *([code, LANGUAGE_NAMES[code]] for code in LANGUAGES),
    ]


def test_no_static_script_carries_its_own_language_list() -> None:
    scripts = sorted(STATIC.glob("*.js"))
    assert any(script.name == "viewer.js" for script in scripts)
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        names = [name for name in LANGUAGE_NAMES.values() if name in text]
        codes = [
            code
            for code in LANGUAGES
            if code != DEFAULT_LANGUAGE and (f'"{code}"' in text or f"'{code}'" in text)
        ]
        assert not names and not codes, (script.name, names, codes)
