"""The report PDF read back with poppler's tools: the Cyrillic patient name, labels and dates
in each of the five languages, embedded fonts, page numbers, the amended and draft marks,
the logo and the key images. Page 1 of each language is saved under test-artifacts/."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from klinika.audit import Actor
from klinika.config import load_settings
from klinika.i18n import LANGUAGES, translator
from klinika.reports import Draft, KeyImage
from klinika.reports.labels import SECTION_LABELS, TITLE
from klinika.runtime import Runtime
from tests.browser import ARTIFACTS
from tests.reports.conftest import CYRILLIC_DISPLAY, Study, store_study

DOCTOR = Actor("doctor", "doctor")
MARKUP = "Кашель #1 *жирный* $x$ <b>"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    folder = tmp_path_factory.mktemp("pdf")
    logo = folder / "logo.png"
    Image.new("RGB", (120, 60), (20, 90, 160)).save(logo)
    settings = load_settings(
        env={},
        data_dir=folder / "data",
        jwt_secret="x" * 40,
        fsync=False,
        clinic_name="Klinika Zdorovye · Клиника «Здоровье»",
        clinic_address="ул. Ленина, 1\n101000 Москва",
        clinic_logo=logo,
    )
    with Runtime(settings) as built:
        yield built


def norm(text: str) -> str:
    """Runs of white space (Babel's narrow no-break spaces included) as one space."""
    return re.sub(r"\s+", " ", text)


def text_of(pdf: Path | bytes) -> str:
    """The PDF's text, as ``pdftotext`` reads it."""
    data = pdf if isinstance(pdf, bytes) else pdf.read_bytes()
    out = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True)
    return norm(out.stdout.decode("utf-8"))


def signed_pdf(runtime: Runtime, tmp_path: Path, language: str, **sections: str) -> Path:
    study = store_study(runtime.archive)
    draft = Draft(
        language=language,
        template="CT",
        sections={"indication": MARKUP, "findings": "Норма.", **sections},
        key_images=tuple(
            KeyImage(study.series_uid, sop, 1, f"№{n}") for n, sop in enumerate(study.sop_uids, 1)
        ),
    )
    view = runtime.reports.save_draft(study.study_uid, draft, DOCTOR, expected_revision=None)
    runtime.reports.sign(
        study.study_uid, DOCTOR, signer_name="Dr. Zoë Müller", expected_revision=view.revision
    )
    pdf, _version = runtime.reports.pdf(study.study_uid, DOCTOR)
    target = tmp_path / f"report-{language}.pdf"
    target.write_bytes(pdf)
    return target


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_pdf_speaks_the_report_language_with_the_cyrillic_name_and_embedded_fonts(
    runtime: Runtime, tmp_path: Path, language: str
) -> None:
    pdf = signed_pdf(runtime, tmp_path, language)
    speak = translator(language)
    text = text_of(pdf)
    assert CYRILLIC_DISPLAY in text
    assert speak.gettext(TITLE) in text
    for key in ("indication", "findings"):
        assert speak.gettext(SECTION_LABELS[key]) in text
    assert norm(speak.format_date("20240305", "long")) in text  # study date, localized
    assert norm(speak.format_date("19800131", "long")) in text
    assert MARKUP in text  # user text is text, never markup
    assert "Dr. Zoë Müller" in text
    assert "1 / 1" in text
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, check=True, text=True)
    rows = fonts.stdout.splitlines()[2:]
    assert rows, fonts.stdout
    assert any("NotoSans" in row for row in rows)
    assert all(row.split()[-5] == "yes" for row in rows), fonts.stdout  # the "emb" column
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True)
    assert len(images.stdout.splitlines()[2:]) >= 3  # the logo and two key images
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "72",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(ARTIFACTS / f"report-{language}-page1"),
        ],
        check=True,
    )
    assert (ARTIFACTS / f"report-{language}-page1.png").stat().st_size > 10_000


def test_a_long_amended_report_numbers_its_pages_and_marks_the_version(
    runtime: Runtime, tmp_path: Path
) -> None:
    study: Study = store_study(runtime.archive)
    long_text = "\n\n".join(["Befund ohne Auffälligkeiten. " * 30] * 12)
    reports = runtime.reports
    view = reports.save_draft(
        study.study_uid,
        Draft("de", sections={"findings": long_text}),
        DOCTOR,
        expected_revision=None,
    )
    view = reports.sign(study.study_uid, DOCTOR, signer_name="A", expected_revision=view.revision)
    view = reports.amend(
        study.study_uid, DOCTOR, expected_revision=view.revision, reason="Tippfehler"
    )
    draft_pdf, draft = reports.pdf(study.study_uid, DOCTOR)
    assert draft.number == 2 and not draft.signed
    assert "ENTWURF — nicht unterzeichnet" in text_of(draft_pdf)
    reports.sign(study.study_uid, DOCTOR, signer_name="B", expected_revision=view.revision)
    final_pdf, final = reports.pdf(study.study_uid, DOCTOR)
    text = text_of(final_pdf)
    assert final.number == 2 and "Berichtigt — Version 2" in text and "Tippfehler" in text
    pages = int(re.findall(r"Seite 1 / (\d+)", text)[0])
    assert pages >= 2 and f"Seite {pages} / {pages}" in text
    assert "ENTWURF" not in text
    first, _ = reports.pdf(study.study_uid, DOCTOR, number=1)
    assert "Berichtigt" not in text_of(first) and "Version 1" in text_of(first)
