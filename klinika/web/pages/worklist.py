"""The worklist: the home page. Studies found through the one query engine (the index only),
filtered, sorted and paged; per study the viewer, the report, export and (admins) delete."""

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from klinika.archive.labels import InvalidLabel, StudyLabels
from klinika.auth.http import client_address
from klinika.auth.models import Principal
from klinika.dicom.attributes import Level
from klinika.i18n import N_
from klinika.index.query import Query as IndexQuery
from klinika.index.query import QueryResult
from klinika.web.pages.context import PageContext, safe_next

PAGE_SIZE = 50
#: sort key -> index attributes (the first decides the direction's meaning)
SORTS = {
    "date": ("StudyDate", "StudyTime"),
    "name": ("PatientName",),
    "pid": ("PatientID",),
    "accession": ("AccessionNumber",),
    "description": ("StudyDescription",),
}
PRESETS = {
    "today": (N_("Today"), 0, 0),
    "yesterday": (N_("Yesterday"), 1, 1),
    "7d": (N_("Last 7 days"), 6, 0),
    "30d": (N_("Last 30 days"), 29, 0),
}
MODALITIES = ("CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "SR", "DOC")
RETURNED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "ReferringPhysicianName",
    "InstitutionName",
    "AccessionNumber",
    "StudyDescription",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
#: PatientSex (PS3.3 C.7.1.1) as shown: (short label, full word for the tooltip)
SEX_LABELS = {
    "F": (N_("F"), N_("female")),
    "M": (N_("M"), N_("male")),
    "O": (N_("O"), N_("other")),
}
#: PatientAge units (PS3.5 6.2, VR AS: nnnD, nnnW, nnnM, nnnY)
AGE_UNITS = {"D": N_("%(n)d d"), "W": N_("%(n)d wk"), "M": N_("%(n)d mo"), "Y": N_("%(n)d y")}
#: The search form's names of the fields (what the form sends is what links send).
URL_NAMES = {"date_from": "from", "date_to": "to"}


@dataclass(frozen=True)
class Filters:
    """The worklist's search form, as typed."""

    name: str = ""
    pid: str = ""
    accession: str = ""
    modality: str = ""
    preset: str = ""
    date_from: str = ""
    date_to: str = ""
    sort: str = "date"
    order: str = "desc"
    label: str = ""

    @property
    def fuzzy(self) -> bool:
        """A name typed without wildcards is matched as QIDO's ``fuzzymatching=true`` does:
        each word starts some part of the name (``иван`` finds ``Иванов^Иван`` and
        ``Петрова^Иванна``, ``smith jo`` finds ``Smith^John``). With ``*`` or ``?`` the
        pattern is the whole name, as in QIDO."""
        name = self.name.strip()
        return bool(name) and not any(c in name for c in "*?")

    def match(self, today: dt.date) -> dict[str, str]:
        """QIDO-style match keys; matching is case-insensitive, as in QIDO."""
        match: dict[str, str] = {}
        if self.name.strip():
            match["PatientName"] = self.name.strip()
        if self.pid.strip():
            match["PatientID"] = self.pid.strip()
        if self.accession.strip():
            match["AccessionNumber"] = self.accession.strip()
        if self.modality in MODALITIES:
            match["ModalitiesInStudy"] = self.modality
        dates = self.date_range(today)
        if dates:
            match["StudyDate"] = dates
        return match

    def date_range(self, today: dt.date) -> str:
        if self.preset in PRESETS:
            _, back, until = PRESETS[self.preset]
            start, end = today - dt.timedelta(days=back), today - dt.timedelta(days=until)
            return f"{start:%Y%m%d}-{end:%Y%m%d}"
        first, last = _date(self.date_from), _date(self.date_to)
        if first or last:
            return f"{first}-{last}"
        return ""

    def query(self, today: dt.date, page: int, labelled: list[str] | None = None) -> IndexQuery:
        """The index query for one page of this search (the bench times the same);
        ``labelled``: the studies carrying the label searched for (a UID list match)."""
        match = self.match(today)
        if labelled is not None:
            match["StudyInstanceUID"] = "\\".join(labelled)
        return IndexQuery(
            Level.STUDY,
            match=match,
            include=frozenset(RETURNED),
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            order=self.ordering(),
            fuzzy=self.fuzzy,
            folded=self.fuzzy,
        )

    def ordering(self) -> tuple[tuple[str, bool], ...]:
        keys = SORTS.get(self.sort, SORTS["date"])
        return tuple((key, self.order != "asc") for key in keys)

    def query_string(self, **changes: Any) -> str:
        """THE query string of this search (with ``changes``), under the names the search
        form uses: sort headers and the pager keep every filter."""
        values = {**self.__dict__, **changes}
        return urlencode({URL_NAMES.get(k, k): v for k, v in values.items() if v not in ("", None)})


def _date(text: str) -> str:
    """An HTML date input (YYYY-MM-DD) as a DICOM date, or "" when empty or malformed."""
    try:
        return dt.date.fromisoformat(text).strftime("%Y%m%d") if text else ""
    except ValueError:
        return ""


def _value(entry: dict[str, Any], tag: str) -> Any:
    values = entry.get(tag, {}).get("Value") or []
    if not values:
        return ""
    first = values[0]
    if isinstance(first, dict):  # PN
        return first.get("Alphabetic", "")
    return first if len(values) == 1 else values


def age(patient_age: str, birth_date: str, study_date: str) -> tuple[int, str] | None:
    """(number, unit) of the patient's age at the study: PatientAge (AS, ``045Y``) or, failing
    that, the years between birth and study dates."""
    text = str(patient_age or "").strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] in AGE_UNITS:
        return int(text[:3]), text[3]
    try:
        born = dt.datetime.strptime(str(birth_date)[:8], "%Y%m%d").date()
        seen = dt.datetime.strptime(str(study_date)[:8], "%Y%m%d").date()
    except ValueError:
        return None
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return (years, "Y") if years >= 0 else None


def study_rows(matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Template-friendly rows from DICOM JSON study entries."""
    rows = []
    for entry in matches:
        modalities = entry.get("00080061", {}).get("Value") or []
        rows.append(
            {
                "age": age(
                    _value(entry, "00101010"), _value(entry, "00100030"), _value(entry, "00080020")
                ),
                "referring": str(_value(entry, "00080090")).replace("^", " ").strip(),
                "institution": _value(entry, "00080080"),
                "uid": _value(entry, "0020000D"),
                "patient_name": str(_value(entry, "00100010")).replace("^", " ").strip(),
                "patient_id": _value(entry, "00100020"),
                "birth_date": _value(entry, "00100030"),
                "sex": _value(entry, "00100040"),
                "date": _value(entry, "00080020"),
                "time": _value(entry, "00080030"),
                "accession": _value(entry, "00080050"),
                "description": _value(entry, "00081030"),
                "modalities": " ".join(modalities),
                "series": _value(entry, "00201206"),
                "instances": _value(entry, "00201208"),
            }
        )
    return rows


def create_router(context: PageContext) -> APIRouter:
    router = APIRouter()
    Reader = Annotated[Principal, Depends(context.guard("dicom:read"))]
    Deleter = Annotated[Principal, Depends(context.guard("dicom:delete"))]
    Labeller = Annotated[Principal, Depends(context.guard("study:label"))]
    labels = StudyLabels(context.database, context.audit)
    Viewer = Annotated[Principal, Depends(context.guard("account:self"))]

    @router.get("/worklist")
    async def worklist(
        request: Request,
        _: Reader,
        name: Annotated[str, Query(max_length=128)] = "",
        pid: Annotated[str, Query(max_length=64)] = "",
        accession: Annotated[str, Query(max_length=64)] = "",
        modality: Annotated[str, Query(max_length=8)] = "",
        preset: Annotated[str, Query(max_length=16)] = "",
        date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
        date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
        sort: Annotated[str, Query(max_length=16)] = "date",
        order: Annotated[str, Query(max_length=4)] = "desc",
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        label: Annotated[str, Query(max_length=64)] = "",
    ) -> Response:
        filters = Filters(
            name, pid, accession, modality, preset, date_from, date_to, sort, order, label.strip()
        )
        labelled = await run_in_threadpool(labels.studies, filters.label) if filters.label else None
        query = filters.query(dt.date.today(), page, labelled)
        if labelled == []:  # no study has the label
            result, total = QueryResult([], more=False), 0
        else:
            result = await run_in_threadpool(context.archive.search, query)
            total = await run_in_threadpool(context.archive.count, query)
        rows = study_rows(result.matches)
        uids = [row["uid"] for row in rows]
        statuses = await run_in_threadpool(context.reports.statuses, uids)
        study_labels = await run_in_threadpool(labels.of, uids)
        known_labels = await run_in_threadpool(labels.known)
        links = {
            "prev": filters.query_string(page=page - 1) if page > 1 else None,
            "next": filters.query_string(page=page + 1) if result.more else None,
        }
        sort_links = {
            key: filters.query_string(
                sort=key, order="asc" if filters.sort == key and order != "asc" else "desc"
            )
            for key in SORTS
        }
        return context.pages.render(
            request,
            "worklist/index.html",
            active="worklist",
            filters=filters,
            rows=rows,
            statuses=statuses,
            study_labels=study_labels,
            known_labels=known_labels,
            label_error=request.query_params.get("label_error"),
            total=total,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            links=links,
            sort_links=sort_links,
            presets=PRESETS,
            modalities=MODALITIES,
            sex_labels=SEX_LABELS,
            age_units=AGE_UNITS,
            deleted=request.query_params.get("deleted"),
        )

    @router.get("/notfoundstudy")
    @router.get("/notfoundserver")
    def study_not_found(request: Request, _: Viewer) -> Response:
        """Where OHIF goes when a study is not there (viewer.js brings the browser here):
        our page, in the user's language, back to the worklist."""
        return context.pages.render(
            request,
            "worklist/not_found.html",
            status_code=404,
            active="worklist",
            study_uid=request.query_params.get("StudyInstanceUIDs", "")[:256],
        )

    @router.post("/worklist/studies/{study_uid}/delete")
    async def delete_study(study_uid: str, _: Deleter) -> Response:
        """Delete a study (admins; the page asks for confirmation; audited by the guard)."""
        await run_in_threadpool(context.archive.delete, study_uid)
        return RedirectResponse("/worklist?deleted=1", status_code=303)

    LabelText = Annotated[str, Form(max_length=200)]
    Next = Annotated[str, Form(alias="next", max_length=4000)]

    @router.post("/worklist/studies/{study_uid}/labels")
    async def add_label(
        request: Request, study_uid: str, principal: Labeller, label: LabelText, back: Next = ""
    ) -> Response:
        """Put a label on a study (audited as ``study:label``), back to the same worklist."""
        back = safe_next(back, "/worklist")
        try:
            await run_in_threadpool(
                labels.add, study_uid, label, principal.actor, source=client_address(request)
            )
        except InvalidLabel:
            glue = "&" if "?" in back else "?"
            return RedirectResponse(f"{back}{glue}label_error=1", status_code=303)
        return RedirectResponse(back, status_code=303)

    @router.post("/worklist/studies/{study_uid}/labels/remove")
    async def remove_label(
        request: Request, study_uid: str, principal: Labeller, label: LabelText, back: Next = ""
    ) -> Response:
        """Take a label off a study (audited as ``study:label``)."""
        await run_in_threadpool(
            labels.remove, study_uid, label, principal.actor, source=client_address(request)
        )
        return RedirectResponse(safe_next(back, "/worklist"), status_code=303)

    return router
