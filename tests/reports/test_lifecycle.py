"""The report lifecycle through the HTTP API, with the role matrix: doctors write and sign,
operators read signed versions only, amendments keep the history, stale revisions conflict.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from klinika.audit import AuditFilter
from tests.reports.conftest import CYRILLIC_DISPLAY, Installation, Study

FINDINGS = "Лёгочные поля прозрачны. Sin lesiones focales. Keine Läsionen. #not *markup*"


def url(study: Study, tail: str = "") -> str:
    return f"/api/studies/{study.study_uid}/report{tail}"


def draft(revision: int | None, **sections: str) -> dict[str, object]:
    return {"revision": revision, "language": "ru", "template": "CT", "sections": sections}


def test_doctor_writes_signs_and_amends_keeping_every_version(
    site: Installation, study: Study
) -> None:
    doctor = site.headers("doctor")
    client = site.client
    assert client.get(url(study), headers=doctor).status_code == 404  # nothing yet

    created = client.put(url(study), headers=doctor, json=draft(None, findings=FINDINGS))
    assert created.status_code == 200, created.text
    report = created.json()
    assert (report["status"], report["version"]["number"], report["revision"]) == ("draft", 1, 1)
    assert report["header"]["patient_name"] == CYRILLIC_DISPLAY
    assert report["header"]["modality"] == "CT"

    saved = client.put(
        url(study), headers=doctor, json=draft(1, findings=FINDINGS, impression="Норма.")
    ).json()
    assert saved["revision"] == 2 and saved["version"]["sections"]["impression"] == "Норма."

    signed = client.post(url(study, "/sign"), headers=doctor, json={"revision": 2})
    assert signed.status_code == 200, signed.text
    version1 = signed.json()["version"]
    assert signed.json()["status"] == "final"
    assert version1["signed_by"] == "doctor" and version1["signed_by_name"] == "Doctor"
    assert version1["signed_at"] and version1["stored_in_study"] is True
    # a signed version cannot be edited or signed again
    assert client.put(url(study), headers=doctor, json=draft(3)).status_code == 409
    assert client.post(url(study, "/sign"), headers=doctor, json={"revision": 3}).status_code == 409

    amended = client.post(
        url(study, "/amend"), headers=doctor, json={"revision": 3, "reason": "Опечатка"}
    ).json()
    assert amended["status"] == "draft" and amended["version"]["number"] == 2
    assert amended["version"]["sections"]["findings"] == FINDINGS  # starts as a copy
    client.put(url(study), headers=doctor, json=draft(4, findings=FINDINGS, impression="Иначе."))
    final = client.post(url(study, "/sign"), headers=site.headers("admin"), json={"revision": 5})
    assert final.status_code == 200 and final.json()["status"] == "amended"
    assert final.json()["version"]["amendment_reason"] == "Опечатка"

    versions = client.get(url(study, "/versions"), headers=doctor).json()
    assert [(v["number"], v["state"]) for v in versions] == [(1, "final"), (2, "amended")]
    first = client.get(url(study, "/versions/1"), headers=doctor).json()
    assert first["sections"]["impression"] == "Норма."  # the earlier version is kept as signed


def test_operator_cannot_write_and_reads_only_signed_versions(
    site: Installation, study: Study
) -> None:
    doctor, operator = site.headers("doctor"), site.headers("operator")
    client = site.client
    assert client.put(url(study), headers=operator, json=draft(None)).status_code == 403
    client.put(url(study), headers=doctor, json=draft(None, findings="Первый вариант."))
    assert client.get(url(study), headers=operator).status_code == 404  # a draft is not shown
    assert client.get(url(study, "/versions/1"), headers=operator).status_code == 404
    # no signed version yet: the front desk has no PDF to print (issue 16, point 3)
    assert client.get(url(study, "/pdf"), headers=operator).status_code == 404
    client.post(url(study, "/sign"), headers=doctor, json={"revision": 1})
    signed_pdf = client.get(url(study, "/pdf"), headers=operator)
    assert signed_pdf.status_code == 200 and signed_pdf.content.startswith(b"%PDF")
    assert client.post(url(study, "/sign"), headers=operator, json={"revision": 2}).status_code == (
        403
    )
    assert client.post(
        url(study, "/amend"), headers=operator, json={"revision": 2}
    ).status_code == (403)
    no_reason = client.post(url(study, "/amend"), headers=doctor, json={"revision": 2})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]
    blank = client.post(url(study, "/amend"), headers=doctor, json={"revision": 2, "reason": " "})
    assert blank.status_code == 400
    client.post(url(study, "/amend"), headers=doctor, json={"revision": 2, "reason": "Уточнение"})
    client.put(url(study), headers=doctor, json=draft(3, findings="Черновик поправки."))

    seen = client.get(url(study), headers=operator).json()
    assert seen["status"] == "final" and seen["version"]["number"] == 1
    assert seen["version"]["sections"]["findings"] == "Первый вариант."
    assert [v["number"] for v in seen["versions"]] == [1]
    assert [v["number"] for v in client.get(url(study, "/versions"), headers=operator).json()] == [
        1
    ]
    assert client.get(url(study, "/versions/2"), headers=operator).status_code == 404
    # the doctor sees the amendment in progress
    assert client.get(url(study), headers=doctor).json()["version"]["number"] == 2


def test_a_stale_revision_is_refused_with_409_and_nothing_is_overwritten(
    site: Installation, study: Study
) -> None:
    doctor, admin = site.headers("doctor"), site.headers("admin")
    client = site.client
    client.put(url(study), headers=doctor, json=draft(None, findings="A"))
    assert client.put(url(study), headers=admin, json=draft(1, findings="B")).status_code == 200
    stale = client.put(url(study), headers=doctor, json=draft(1, findings="C"))
    assert stale.status_code == 409
    assert "revision" in stale.json()["error"]
    assert client.put(url(study), headers=doctor, json=draft(None, findings="D")).status_code == 409
    assert client.post(url(study, "/sign"), headers=doctor, json={"revision": 1}).status_code == 409
    assert client.get(url(study), headers=doctor).json()["version"]["sections"]["findings"] == "B"


def test_invalid_drafts_are_refused_with_the_reason(site: Installation, study: Study) -> None:
    doctor = site.headers("doctor")
    client = site.client
    unknown = client.put(url(study), headers=doctor, json={"sections": {"gossip": "x"}})
    assert unknown.status_code == 400 and "gossip" in unknown.json()["error"]
    assert client.put(url(study), headers=doctor, json={"language": "xx"}).status_code == 400
    stranger = {"series_uid": "1.2.3", "sop_instance_uid": "1.2.3.4", "frame": 1}
    refused = client.put(url(study), headers=doctor, json={"key_images": [stranger]})
    assert refused.status_code == 400 and "1.2.3.4" in refused.json()["error"]
    no_frame = {"series_uid": study.series_uid, "sop_instance_uid": study.sop_uids[0], "frame": 5}
    refused = client.put(url(study), headers=doctor, json={"key_images": [no_frame]})
    assert refused.status_code == 400 and "no frame 5" in refused.json()["error"]
    assert client.put("/api/studies/1.2.3/report", headers=doctor, json={}).status_code == 404
    empty = client.put(url(study), headers=doctor, json={"sections": {}}).json()
    assert client.post(url(study, "/sign"), headers=doctor, json={"revision": 1}).status_code == 400
    assert empty["revision"] == 1


def test_every_view_edit_sign_amend_and_pdf_is_an_audit_event(
    site: Installation, study: Study
) -> None:
    doctor = site.headers("doctor")
    client = site.client
    client.put(url(study), headers=doctor, json=draft(None, findings="Норма."))
    client.get(url(study), headers=doctor)
    client.get(url(study, "/pdf"), headers=doctor)
    client.post(url(study, "/sign"), headers=doctor, json={"revision": 1})
    client.post(url(study, "/amend"), headers=doctor, json={"revision": 2, "reason": "x"})
    client.put(url(study), headers=doctor, json=draft(1, findings="stale"))  # 409
    events, _total = site.runtime.audit.search(AuditFilter(study_uid=study.study_uid))
    seen = [(e.action, e.outcome) for e in events if e.action.startswith("report:")]
    for expected in (
        ("report:save", "success"),
        ("report:view", "success"),
        ("report:pdf", "success"),
        ("report:sign", "success"),
        ("report:amend", "success"),
        ("report:save", "failure"),
    ):
        assert expected in seen, (expected, seen)
    sign = next(e for e in events if e.action == "report:sign")
    assert sign.actor == "doctor" and json.loads(sign.details)["version"] == 1


def test_templates_exist_for_each_modality_in_every_language(
    site: Installation, study: Study
) -> None:
    from klinika.i18n import LANGUAGES
    from klinika.reports.templates import TEMPLATE_SECTIONS, TEMPLATES, template_key

    for key, by_language in TEMPLATES.items():
        assert set(by_language) == set(LANGUAGES), key
        for language, sections in by_language.items():
            assert set(sections) == set(TEMPLATE_SECTIONS), (key, language)
            assert all(text.strip() for text in sections.values()), (key, language)
    assert [template_key(m) for m in ("CT", "MR", "US", "CR", "DX")] == [
        "CT",
        "MR",
        "US",
        "CR/DX",
        "CR/DX",
    ]
    answer = site.client.get(
        url(study, "/templates?language=de"), headers=site.headers("doctor")
    ).json()
    assert answer["suggested"] == "CT"
    names = {t["key"]: t["name"] for t in answer["templates"]}
    assert names["CT"] == "Computertomographie"


def test_two_writers_saving_from_the_same_revision_one_wins_one_conflicts(
    site: Installation, study: Study
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from klinika.audit import Actor
    from klinika.reports import Draft, StaleReport

    reports = site.runtime.reports
    first = reports.save_draft(
        study.study_uid,
        Draft(sections={"findings": "0"}),
        Actor("doctor", "doctor"),
        expected_revision=None,
    )

    def save(text: str) -> str:
        try:
            reports.save_draft(
                study.study_uid,
                Draft(sections={"findings": text}),
                Actor(text, "doctor"),
                expected_revision=first.revision,
            )
        except StaleReport:
            return "conflict"
        return text

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(save, ["A", "B"]))
    assert outcomes in (["A", "conflict"], ["B", "conflict"])
    winner = outcomes[0]
    view = reports.current(study.study_uid, Actor("doctor", "doctor"), drafts=True)
    assert view.version.sections["findings"] == winner and view.revision == first.revision + 1


def test_the_viewers_key_image_starts_or_extends_the_draft_once_and_not_a_signed_report(
    site: Installation, study: Study
) -> None:
    doctor, operator = site.headers("doctor"), site.headers("operator")
    client = site.client
    image = {"series_uid": study.series_uid, "sop_instance_uid": study.sop_uids[1], "frame": 1}
    assert client.post(url(study, "/key-images"), headers=operator, json=image).status_code == 403
    started = client.post(url(study, "/key-images"), headers=doctor, json=image)
    assert started.status_code == 200 and started.json()["status"] == "draft"
    assert [i["sop_instance_uid"] for i in started.json()["version"]["key_images"]] == [
        study.sop_uids[1]
    ]
    client.put(url(study), headers=doctor, json=draft(1, findings=FINDINGS))
    again = client.post(url(study, "/key-images"), headers=doctor, json=image).json()
    assert len(again["version"]["key_images"]) == 1  # the same image is not added twice
    assert again["version"]["sections"]["findings"] == FINDINGS  # the draft's text is kept
    first = {**image, "sop_instance_uid": study.sop_uids[0]}
    both = client.post(url(study, "/key-images"), headers=doctor, json=first).json()
    assert [i["sop_instance_uid"] for i in both["version"]["key_images"]] == [
        study.sop_uids[1],
        study.sop_uids[0],
    ]
    stranger = {**image, "sop_instance_uid": "1.2.3.4"}
    assert client.post(url(study, "/key-images"), headers=doctor, json=stranger).status_code == 400
    client.post(url(study, "/sign"), headers=doctor, json={"revision": both["revision"]})
    signed = client.post(url(study, "/key-images"), headers=doctor, json=image)
    assert signed.status_code == 409 and "amend" in signed.json()["error"]
