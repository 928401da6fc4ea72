"""Labels on studies (``study_labels``): short words a department tags studies with
("urgent", "teaching", "second opinion") and filters the worklist by.

Keyed by the Study Instance UID, not the study row: a label survives a study's rows being
rebuilt (re-import, merge) and is dropped with the study (:func:`forget_if_gone`).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from klinika.db import metadata
from klinika.index.schema import studies

study_labels = sa.Table(
    "study_labels",
    metadata,
    sa.Column("study_instance_uid", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
)
sa.Index("ix_study_labels_label", study_labels.c.label)


def labels_of(connection: sa.Connection, study_uids: Iterable[str]) -> dict[str, list[str]]:
    """Each study's labels, sorted; studies without labels are absent."""
    uids = list(study_uids)
    found: dict[str, list[str]] = {}
    if not uids:
        return found
    rows = connection.execute(
        sa.select(study_labels.c.study_instance_uid, study_labels.c.label)
        .where(study_labels.c.study_instance_uid.in_(uids))
        .order_by(study_labels.c.label)
    )
    for uid, label in rows:
        found.setdefault(uid, []).append(label)
    return found


def studies_labelled(connection: sa.Connection, label: str) -> list[str]:
    """The Study Instance UIDs carrying ``label``."""
    return list(
        connection.execute(
            sa.select(study_labels.c.study_instance_uid).where(study_labels.c.label == label)
        ).scalars()
    )


def known_labels(connection: sa.Connection) -> list[tuple[str, int]]:
    """Every label in use with its number of studies, by label."""
    count = sa.func.count().label("studies")
    return [
        (label, number)
        for label, number in connection.execute(
            sa.select(study_labels.c.label, count)
            .group_by(study_labels.c.label)
            .order_by(study_labels.c.label)
        )
    ]


def add_label(connection: sa.Connection, study_uid: str, label: str, by: str, now: int) -> bool:
    """Label a study; False when it had the label already."""
    exists = connection.execute(
        sa.select(sa.literal(1)).where(
            study_labels.c.study_instance_uid == study_uid, study_labels.c.label == label
        )
    ).first()
    if exists:
        return False
    connection.execute(
        sa.insert(study_labels).values(
            study_instance_uid=study_uid, label=label, created_at=now, created_by=by
        )
    )
    return True


def remove_label(connection: sa.Connection, study_uid: str, label: str) -> bool:
    """Take a label off a study; False when it did not have it."""
    result = connection.execute(
        sa.delete(study_labels).where(
            study_labels.c.study_instance_uid == study_uid, study_labels.c.label == label
        )
    )
    return result.rowcount > 0


def forget_if_gone(connection: sa.Connection, study_uid: str) -> None:
    """Drop the labels of a study that is no longer in the index (after a delete)."""
    connection.execute(
        sa.delete(study_labels).where(
            study_labels.c.study_instance_uid == study_uid,
            ~sa.exists().where(studies.c.study_instance_uid == study_uid),
        )
    )
