"""Plain records the reports room hands out: a report version, a draft to save, a view."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from klinika.i18n import LANGUAGES
from klinika.reports.errors import InvalidReport
from klinika.reports.labels import SECTIONS
from klinika.reports.states import ReportState, VersionStatus, version_state
from klinika.reports.templates import TEMPLATES

MAX_SECTION_CHARS = 20_000
MAX_KEY_IMAGES = 8
MAX_CAPTION_CHARS = 200


def iso(seconds: int | None) -> str | None:
    """Unix seconds as ISO-8601 UTC, for API answers."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class KeyImage:
    """A frame the doctor picked for the PDF (``frame`` counts from 1, as in WADO-RS)."""

    series_uid: str
    sop_instance_uid: str
    frame: int = 1
    caption: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "frame": self.frame,
            "caption": self.caption,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> KeyImage:
        return cls(
            str(value["series_uid"]),
            str(value["sop_instance_uid"]),
            int(value.get("frame", 1)),
            str(value.get("caption", "")),
        )


@dataclass(frozen=True)
class Draft:
    """What a writer sends: the report's language, template, sections and key images.

    Constructing one validates it (:class:`InvalidReport` names the offending field).
    """

    language: str = "en"
    template: str | None = None
    sections: dict[str, str] = field(default_factory=dict)
    key_images: tuple[KeyImage, ...] = ()

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise InvalidReport(f"language {self.language!r} is not one of {LANGUAGES}")
        if self.template is not None and self.template not in TEMPLATES:
            raise InvalidReport(f"template {self.template!r} is not one of {sorted(TEMPLATES)}")
        unknown = sorted(set(self.sections) - set(SECTIONS))
        if unknown:
            raise InvalidReport(f"unknown section(s) {unknown}; sections are {SECTIONS}")
        for name, text in self.sections.items():
            if not isinstance(text, str):
                raise InvalidReport(f"section {name} must be text")
            if len(text) > MAX_SECTION_CHARS:
                raise InvalidReport(f"section {name} is longer than {MAX_SECTION_CHARS} characters")
        if len(self.key_images) > MAX_KEY_IMAGES:
            raise InvalidReport(f"at most {MAX_KEY_IMAGES} key images")
        for image in self.key_images:
            if image.frame < 1:
                raise InvalidReport("key image frames count from 1")
            if len(image.caption) > MAX_CAPTION_CHARS:
                raise InvalidReport(f"key image captions are at most {MAX_CAPTION_CHARS} chars")

    def full_sections(self) -> dict[str, str]:
        """Every section, in order, empty ones as ``""``."""
        return {name: self.sections.get(name, "") for name in SECTIONS}


@dataclass(frozen=True)
class ReportVersion:
    """One version of a report: a draft, or final once signed."""

    number: int
    status: VersionStatus
    language: str
    template: str | None
    sections: dict[str, str]
    key_images: tuple[KeyImage, ...]
    amendment_reason: str | None
    author: str
    created_at: int
    updated_at: int
    signed_by: str | None
    signed_by_name: str | None
    signed_at: int | None
    pdf_sop_instance_uid: str | None
    stored_in_study: bool

    @property
    def signed(self) -> bool:
        return self.status == VersionStatus.FINAL

    @property
    def state(self) -> ReportState:
        return version_state(self.number, self.status)

    def summary(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "status": self.status,
            "state": self.state,
            "language": self.language,
            "author": self.author,
            "updated_at": iso(self.updated_at),
            "signed_by": self.signed_by,
            "signed_by_name": self.signed_by_name,
            "signed_at": iso(self.signed_at),
            "amendment_reason": self.amendment_reason,
        }

    def as_dict(self) -> dict[str, Any]:
        return self.summary() | {
            "template": self.template,
            "sections": dict(self.sections),
            "key_images": [image.as_dict() for image in self.key_images],
            "created_at": iso(self.created_at),
            "pdf_sop_instance_uid": self.pdf_sop_instance_uid,
            "stored_in_study": self.stored_in_study,
        }


@dataclass(frozen=True)
class ReportView:
    """A report as one reader may see it: the newest version they may read, the summaries of
    those versions, and the revision to send back with a change."""

    study_uid: str
    revision: int
    version: ReportVersion
    versions: tuple[ReportVersion, ...]
    header: dict[str, Any]

    @property
    def status(self) -> str:
        return self.version.state

    def as_dict(self) -> dict[str, Any]:
        signed = [v.number for v in self.versions if v.signed]
        return {
            "study_uid": self.study_uid,
            "revision": self.revision,
            "status": self.status,
            "version": self.version.as_dict(),
            "signed_version": signed[-1] if signed else None,
            "versions": [v.summary() for v in self.versions],
            "header": self.header,
        }
