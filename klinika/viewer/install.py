"""Install the prebuilt OHIF Viewer from npm: pinned version, integrity checked, cached.

``npm pack @ohif/app@<version>`` fetches the package tarball (npm verifies it against the
registry); we check it again against the sha512 pinned here, so a changed tarball is refused
even when the registry says otherwise. Its ``package/dist`` is the built web app; it is
extracted into ``<cache>/ohif/<version>/`` and renamed into place when complete. The hashes of
the inline scripts of ``index.html`` (for the CSP) are computed once, here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from klinika.errors import KlinikaError

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
#: npm's integrity string of the tarball (``npm view @ohif/app@3.13.2 dist.integrity``).
OHIF_INTEGRITY = (
    "sha512-"
    "WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
)
MANIFEST = "klinika-install.json"
#: Served gzip-compressed when the browser accepts it (compressed once, at install).
COMPRESSIBLE = frozenset({".js", ".css", ".json", ".jsonc", ".wasm", ".svg", ".html", ".map"})
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)


class ViewerInstallError(KlinikaError):
    """The viewer could not be downloaded, verified or unpacked."""


@dataclass(frozen=True)
class InstalledViewer:
    """An installed OHIF build."""

    root: Path  # the web app: index.html, app-config.js, bundles
    version: str
    integrity: str
    inline_script_hashes: tuple[str, ...]  # CSP sources, "'sha256-...'"

    @property
    def index_html(self) -> Path:
        return self.root / "index.html"


def viewer_dir(cache_dir: Path, version: str = OHIF_VERSION) -> Path:
    return cache_dir / "ohif" / version


def sri_sha512(path: Path) -> str:
    """The Subresource-Integrity style sha512 of a file, as npm writes it."""
    digest = hashlib.sha512()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def inline_script_hashes(index_html: bytes) -> tuple[str, ...]:
    """CSP hash sources of the inline scripts of an HTML page (CSP3 'hash-source')."""
    return tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + "'"
        for body in _INLINE_SCRIPT.findall(index_html)
    )


def load_installed(cache_dir: Path, version: str = OHIF_VERSION) -> InstalledViewer | None:
    """The installed viewer of ``version``, or None when it is not (completely) installed."""
    target = viewer_dir(cache_dir, version)
    try:
        manifest = json.loads((target / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (target / "dist" / "index.html").is_file() or not manifest.get("gzip"):
        return None
    return InstalledViewer(
        root=target / "dist",
        version=manifest["version"],
        integrity=manifest["integrity"],
        inline_script_hashes=tuple(manifest["inline_script_hashes"]),
    )


def install(
    cache_dir: Path,
    *,
    version: str = OHIF_VERSION,
    integrity: str = OHIF_INTEGRITY,
    tarball: Path | None = None,
) -> InstalledViewer:
    """Install OHIF ``version`` into ``cache_dir`` unless it is there already.

    ``tarball`` installs from a file instead of asking npm (its integrity is checked all the
    same).

    Raises
    ------
    ViewerInstallError
        When npm fails, the tarball's sha512 is not the pinned one, or it holds no web app.
    """
    installed = load_installed(cache_dir, version)
    if installed is not None:
        return installed
    target = viewer_dir(cache_dir, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=".install-"))
    try:
        if tarball is None:
            tarball = _npm_pack(f"{OHIF_PACKAGE}@{version}", work_dir)
        found = sri_sha512(tarball)
        if found != integrity:
            raise ViewerInstallError(
                f"{tarball.name}: integrity {found} is not the pinned {integrity}; refusing it"
            )
        staging, result = work_dir / "staging", work_dir / "result"
        with tarfile.open(tarball, "r:gz") as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
            if not members:
                raise ViewerInstallError(f"{tarball.name} holds no package/dist: not a built app")
            archive.extractall(staging, members=members, filter="data")
        result.mkdir()
        (staging / "package" / "dist").rename(result / "dist")
        precompress(result / "dist")
        manifest = {
            "package": OHIF_PACKAGE,
            "version": version,
            "integrity": integrity,
            "gzip": True,
            "inline_script_hashes": list(
                inline_script_hashes((result / "dist" / "index.html").read_bytes())
            ),
        }
        (result / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if target.exists():  # a broken earlier install
            shutil.rmtree(target)
        result.rename(target)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    installed = load_installed(cache_dir, version)
    if installed is None:
        raise ViewerInstallError(f"the viewer in {target} is incomplete after installing")
    return installed


def precompress(root: Path) -> None:
    """Write ``<file>.gz`` next to each compressible file (zlib releases the GIL: threads)."""
    files = [p for p in root.rglob("*") if p.suffix in COMPRESSIBLE and p.stat().st_size > 1024]

    def compress(path: Path) -> None:
        data = path.read_bytes()
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, 6, mtime=0))

    with ThreadPoolExecutor() as pool:
        list(pool.map(compress, files))


def _npm_pack(spec: str, destination: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise ViewerInstallError("npm is not installed (scripts/setup.sh installs it)")
    try:
        completed = subprocess.run(
            [npm, "pack", spec, "--json", "--pack-destination", str(destination)],
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ViewerInstallError(f"npm pack {spec} failed: {detail.strip()[-500:]}") from exc
    filename = json.loads(completed.stdout)[0]["filename"]
    return destination / Path(filename).name
