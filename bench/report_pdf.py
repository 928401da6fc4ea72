"""Time report PDF generation: a two-page report with two key images (median of N runs).

usage: .venv/bin/python bench/report_pdf.py [--runs 20]

Builds a throw-away installation, stores two 512×512 CT slices of the demo phantom, writes a
Russian report long enough for two A4 pages with both slices as key images, then times
``ReportService.pdf`` (index header, two frames rendered, typst layout, audit event), its
parts, and signing (PDF + Encapsulated PDF + ``Archive.store``). The first call of a process
also scans the fonts (reported apart as "cold").
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from PIL import Image

from klinika.audit import Actor
from klinika.config import load_settings
from klinika.demo.generate import generate_demo
from klinika.dicom.attributes import Level
from klinika.index.query import Query
from klinika.reports import Draft, KeyImage
from klinika.reports.document import report_document
from klinika.reports.header import study_header
from klinika.reports.pdf import render_key_image, render_pdf
from klinika.runtime import Runtime

DOCTOR = Actor("bench", "doctor")
PARAGRAPH = (
    "Лёгочные поля прозрачны, без очаговых и инфильтративных изменений. Корни лёгких "
    "структурны. Сердце не расширено. Диафрагма с ровными контурами, синусы свободны. "
)


def timed(function, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"| {name} | {statistics.median(samples) * 1000:.1f} | {ordered[0] * 1000:.1f} "
        f"| {p90 * 1000:.1f} | {len(samples)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="klinika-bench-") as folder:
        root = Path(folder)
        logo = root / "logo.png"
        Image.new("RGB", (240, 120), (20, 90, 160)).save(logo)
        settings = load_settings(
            env={},
            data_dir=root / "data",
            jwt_secret="bench-secret-that-is-long-enough-0123456789",
            fsync=False,
            clinic_name="Клиника «Здоровье»",
            clinic_address="ул. Ленина, 1\n101000 Москва",
            clinic_logo=logo,
        )
        with Runtime(settings) as runtime:
            for path in generate_demo(root / "demo", ct_slices=2):
                runtime.archive.store(path.read_bytes())
            match = runtime.archive.search(
                Query(Level.STUDY, match={"ModalitiesInStudy": "CT"}, limit=1)
            ).matches[0]
            study_uid = match["0020000D"]["Value"][0]
            records = runtime.archive.instances(study_uid)[:2]
            findings = "\n\n".join([PARAGRAPH * 6] * 5)
            draft = Draft(
                language="ru",
                template="CT",
                sections={"indication": "Кашель.", "findings": findings, "impression": "Норма."},
                key_images=tuple(
                    KeyImage(r.series_uid, r.sop_instance_uid, 1, f"Срез {n}")
                    for n, r in enumerate(records, 1)
                ),
            )
            reports = runtime.reports
            view = reports.save_draft(study_uid, draft, DOCTOR, expected_revision=None)

            start = time.perf_counter()
            pdf, _version = reports.pdf(study_uid, DOCTOR)
            cold = time.perf_counter() - start
            pdf_path = root / "report.pdf"
            pdf_path.write_bytes(pdf)
            info = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True)
            pages = next(
                (ln.split()[-1] for ln in info.stdout.splitlines() if ln.startswith("Pages:")),
                "?",
            )

            whole = timed(lambda: reports.pdf(study_uid, DOCTOR), args.runs)
            header = study_header(runtime.archive, study_uid)
            header_samples = timed(lambda: study_header(runtime.archive, study_uid), args.runs)
            images_samples = timed(
                lambda: [render_key_image(runtime.archive, study_uid, k) for k in draft.key_images],
                args.runs,
            )
            images = [render_key_image(runtime.archive, study_uid, k) for k in draft.key_images]
            document = report_document(reports.clinic, header, view.version)
            layout_samples = timed(
                lambda: render_pdf(document, images=images, logo=logo), args.runs
            )
            sign_samples = []
            for _ in range(max(3, args.runs // 4)):
                start = time.perf_counter()
                view = reports.sign(
                    study_uid, DOCTOR, signer_name="Bench", expected_revision=view.revision
                )
                sign_samples.append(time.perf_counter() - start)
                view = reports.amend(study_uid, DOCTOR, expected_revision=view.revision)

    print(f"report PDF: {pages} pages, {len(pdf) // 1024} KiB, two 512×512 CT key images")
    print(f"cold first call (font scan included): {cold * 1000:.1f} ms\n")
    print("| step | median ms | min ms | p90 ms | runs |")
    print("| --- | --- | --- | --- | --- |")
    print(line("`ReportService.pdf` (whole export)", whole))
    print(line("header from the index", header_samples))
    print(line("render two key images", images_samples))
    print(line("typst layout + PDF", layout_samples))
    print(line("sign (PDF + Encapsulated PDF + store)", sign_samples))


if __name__ == "__main__":
    main()
