"""Time the worklist's queries (one page of studies plus the total count) on a large index.

usage: worklist.py [--studies 100000] [--runs 5] [--db /tmp/worklist-bench.sqlite] [--out r.json]

The index is generated straight into the tables (patients, studies, series; no blobs), with
Latin and Cyrillic names, dates over ten years and two series per study, because only the index
answers the worklist. The timed calls are the ones the page makes: ``Archive.search`` and
``Archive.count`` through the one query engine, with the worklist's own filters and ordering.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parents[1]))
from klinika.db import Database
from klinika.index import schema
from klinika.index.matching import normalize_name
from klinika.index.query import count, search
from klinika.web.pages.worklist import Filters

FAMILY = ["Smith", "Garcia", "Müller", "Dubois", "Rossi", "Иванов", "Петров", "Сидоров", "Kowalski"]
GIVEN = ["Anna", "Ivan", "Olga", "Jean"]
MODALITIES = ["CT", "MR", "CR", "DX", "US", "MG"]
TODAY = dt.date.today()


def generate(database: Database, studies: int, seed: int = 7) -> None:
    """Fill the index with ``studies`` studies of ``studies // 2.5`` patients, in batches."""
    rng = random.Random(seed)
    patients = max(1, int(studies / 2.5))
    now = dt.datetime.now(dt.UTC)
    with database.writer.begin() as connection:
        rows = []
        for pk in range(1, patients + 1):
            name = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
            rows.append(
                {
                    "pk": pk,
                    "patient_id": f"P{pk:07d}",
                    "patient_name": name,
                    "patient_name_norm": normalize_name(name),
                    "patient_birth_date": f"{rng.randint(1930, 2020)}0101",
                    "patient_sex": rng.choice("MF"),
                }
            )
        connection.execute(schema.patients.insert(), rows)
        for start in range(1, studies + 1, 10_000):
            study_rows, series_rows = [], []
            for pk in range(start, min(start + 10_000, studies + 1)):
                date = TODAY - dt.timedelta(days=rng.randint(0, 3650))
                modalities = sorted(set(rng.sample(MODALITIES, 2)))
                study_rows.append(
                    {
                        "pk": pk,
                        "patient_pk": rng.randint(1, patients),
                        "study_instance_uid": f"1.2.826.0.1.3680043.10.999.{pk}",
                        "study_date": f"{date:%Y%m%d}",
                        "study_time": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}00",
                        "accession_number": f"A{pk:08d}",
                        "study_description": rng.choice(["Head", "Chest", "Abdomen", "Knee"]),
                        "modalities_in_study": "\\".join(modalities),
                        "number_of_study_related_series": "2",
                        "number_of_study_related_instances": str(rng.randint(1, 400)),
                        "updated_at": now,
                    }
                )
                for number, modality in enumerate(modalities, start=1):
                    series_rows.append(
                        {
                            "study_pk": pk,
                            "series_instance_uid": f"1.2.826.0.1.3680043.10.999.{pk}.{number}",
                            "modality": modality,
                            "series_number": str(number),
                        }
                    )
            connection.execute(schema.studies.insert(), study_rows)
            connection.execute(schema.series.insert(), series_rows)


CASES = {
    "default (newest first), page 1": Filters(),
    "default, page 200": Filters(),
    "name wildcard 'иван*'": Filters(name="иван*"),
    "name words 'иван' (fuzzy)": Filters(name="иван"),
    "name 'mül' (fuzzy), sorted by name": Filters(name="mül", sort="name", order="asc"),
    "patient ID": Filters(pid="P0012345"),
    "accession": Filters(accession="A00054321"),
    "last 30 days": Filters(preset="30d"),
    "modality MG, last 7 days": Filters(modality="MG", preset="7d"),
    "modality CT, sorted by patient ID": Filters(modality="CT", sort="pid", order="asc"),
    "sorted by patient name, page 1": Filters(sort="name", order="asc"),
    "sorted by description, page 1": Filters(sort="description", order="asc"),
}


def time_case(database: Database, filters: Filters, page: int, runs: int) -> dict[str, float]:
    query = filters.query(TODAY, page)
    page_ms, count_ms, total = [], [], 0
    with database.reader.connect() as connection:
        for _ in range(runs):
            started = time.perf_counter()
            search(connection, query)
            page_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            total = count(connection, query)
            count_ms.append((time.perf_counter() - started) * 1000)
    return {
        "matches": total,
        "page_ms_median": round(statistics.median(page_ms), 1),
        "count_ms_median": round(statistics.median(count_ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, default=Path("/tmp/klinika-worklist-bench.sqlite"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm"):
        Path(str(args.db) + suffix).unlink(missing_ok=True)
    database = Database(f"sqlite:///{args.db}")
    database.upgrade()
    started = time.perf_counter()
    generate(database, args.studies)
    with database.writer.begin() as connection:
        connection.execute(sa.text("ANALYZE"))
    print(f"generated {args.studies} studies in {time.perf_counter() - started:.1f} s")
    results = {}
    for label, filters in CASES.items():
        page = 200 if "page 200" in label else 1
        results[label] = time_case(database, filters, page, args.runs)
        r = results[label]
        print(
            f"{label:40} {r['matches']:>7} matches  page {r['page_ms_median']:>7.1f} ms"
            f"  count {r['count_ms_median']:>7.1f} ms"
        )
    if args.out:
        args.out.write_text(json.dumps({"studies": args.studies, "results": results}, indent=2))
    database.dispose()


if __name__ == "__main__":
    main()
