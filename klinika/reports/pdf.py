"""The report as a print-ready A4 PDF, laid out by typst.

Why typst: it is a compiled (Rust) typesetter with real layout (paragraph breaking, tables,
page headers and footers, "page n of N"), it shapes any Unicode text with the fonts it is
given and embeds subsets of them, and its Python package is one wheel without system
libraries. WeasyPrint needs Pango/Cairo from the system and lays out in Python; ReportLab
leaves pagination and text shaping to us. See ``docs/reports.md``.

Fonts are Debian's Noto Sans and DejaVu Sans (Latin with diacritics, Cyrillic), installed by
``scripts/setup.sh`` (fonts-noto-core, fonts-dejavu-core). System fonts are ignored so that
the same report looks the same on every machine.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typst

from klinika.archive import Archive
from klinika.dicom import render
from klinika.errors import NotFound
from klinika.reports.errors import InvalidReport, PdfUnavailable
from klinika.reports.layout import TYPST_LAYOUT
from klinika.reports.records import KeyImage

FONT_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/truetype/dejavu"))
#: Font families, by preference; typst falls back along the list for missing glyphs.
FONT_FAMILIES = ("Noto Sans", "DejaVu Sans")
#: Key images are rendered to fit this box (pixels): sharp at the printed size (~8 cm).
KEY_IMAGE_VIEWPORT = (1024, 1024)
_LOGO_TYPES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_fonts_lock = threading.Lock()


@functools.cache
def report_fonts(dirs: tuple[Path, ...] = FONT_DIRS) -> typst.Fonts:
    """The fonts of ``dirs``, scanned once per process (about 70 ms for Debian's Noto).

    Raises
    ------
    PdfUnavailable
        When none of :data:`FONT_FAMILIES` is installed.
    """
    with _fonts_lock:
        fonts = typst.Fonts(
            include_system_fonts=False, font_paths=[str(d) for d in dirs if d.is_dir()]
        )
    if not set(FONT_FAMILIES) & set(fonts.families()):
        raise PdfUnavailable(
            "no report fonts: install fonts-noto-core and fonts-dejavu-core (scripts/setup.sh)"
        )
    return fonts


@dataclass(frozen=True)
class PdfImage:
    """A key image ready for the page: encoded bytes and its caption."""

    data: bytes
    caption: str
    suffix: str = ".jpg"


def render_pdf(
    document: dict[str, Any],
    *,
    images: Sequence[PdfImage] = (),
    logo: Path | None = None,
    timestamp: int | None = None,
) -> bytes:
    """Lay out ``document`` (built by :meth:`ReportService.document`) as a PDF.

    ``timestamp`` (Unix seconds) is the PDF's creation date; with it the output is the same
    bytes for the same input. The logo path is trusted (it comes from the settings).
    """
    fonts = report_fonts()
    data = dict(document)
    data["fonts"] = list(FONT_FAMILIES)
    with tempfile.TemporaryDirectory(prefix="klinika-report-") as folder:
        root = Path(folder)
        (root / "main.typ").write_text(TYPST_LAYOUT, encoding="utf-8")
        clinic = dict(data.get("clinic", {}))
        clinic["logo"] = None
        if logo is not None and logo.is_file() and logo.suffix.lower() in _LOGO_TYPES:
            target = root / f"logo{logo.suffix.lower()}"
            target.write_bytes(logo.read_bytes())
            clinic["logo"] = target.name
        data["clinic"] = clinic
        placed = []
        for number, image in enumerate(images, start=1):
            name = f"key-{number}{image.suffix}"
            (root / name).write_bytes(image.data)
            placed.append({"file": name, "caption": image.caption})
        data["images"] = placed
        try:
            compiler = typst.Compiler(font_paths=fonts, ignore_system_fonts=True)
            pdf = compiler.compile(
                input=str(root / "main.typ"),
                root=str(root),
                sys_inputs={"report": json.dumps(data, ensure_ascii=False)},
                timestamp=timestamp,
            )
        except RuntimeError as exc:  # typst.TypstError: a bug in the layout, not in the data
            raise PdfUnavailable(f"the report could not be laid out: {exc}") from exc
    assert isinstance(pdf, bytes)
    return pdf


def render_key_image(archive: Archive, study_uid: str, image: KeyImage) -> PdfImage:
    """A key image as JPEG, rendered the way WADO-RS ``/rendered`` renders it.

    Raises
    ------
    InvalidReport
        When the instance or frame is not in the study, or its pixels cannot be rendered.
    """
    try:
        record = archive.instances(study_uid, image.series_uid, image.sop_instance_uid)[0]
    except NotFound as exc:
        raise InvalidReport(
            f"key image {image.sop_instance_uid} is not an instance of study {study_uid}"
        ) from exc
    index = image.frame - 1
    if not 0 <= index < record.number_of_frames:
        raise InvalidReport(f"key image {image.sop_instance_uid} has no frame {image.frame}")
    options = render.RenderOptions("image/jpeg", quality=90, viewport=KEY_IMAGE_VIEWPORT)
    try:
        data = archive.render_frame(record, index, options)
    except render.RenderError as exc:
        raise InvalidReport(f"key image {image.sop_instance_uid}: {exc}") from exc
    return PdfImage(data, image.caption)
