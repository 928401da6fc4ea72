// The report editor: load, autosave drafts, insert templates, sign, amend, show versions.
// Talks to /api/studies/{uid}/report (the session cookie goes along). No inline code (CSP).
"use strict";
(() => {
  const root = document.getElementById("report-editor");
  if (!root) return;
  const api = `/api/studies/${encodeURIComponent(root.dataset.studyUid)}/report`;
  const canWrite = root.dataset.canWrite === "true";
  const canSign = root.dataset.canSign === "true";
  const uiLang = root.dataset.uiLang || "en";
  const words = document.getElementById("report-i18n").dataset;
  const $ = (id) => document.getElementById(id);
  const sections = Array.from(root.querySelectorAll("textarea[data-section]"));
  const keyImages = Array.from(root.querySelectorAll("input[data-key-image]"));
  const languageSelect = $("report-language");
  const templateSelect = $("report-template");
  const sectionLabels = {};
  root.querySelectorAll("[data-section-label]").forEach((el) => {
    sectionLabels[el.dataset.sectionLabel] = el.textContent;
  });

  const AUTOSAVE_MS = 1200;
  let revision = null; // null: no report yet
  let report = null;
  let dirty = false;
  let saving = null; // the save in flight (a Promise)
  let conflict = false;
  let timer = null;
  const templateCache = {};

  function say(text, kind) {
    const box = $("report-message");
    box.textContent = text;
    box.className = kind || "";
  }

  async function call(method, url, body) {
    const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_error) {
      data = null;
    }
    return { status: response.status, data };
  }

  function editable() {
    return canWrite && !conflict && (report === null || report.version.status === "draft");
  }

  function applyMode() {
    const open = editable();
    sections.forEach((area) => { area.readOnly = !open; });
    keyImages.forEach((box) => {
      box.disabled = !open;
      const uid = box.dataset.sopInstanceUid;
      root.querySelectorAll(`[data-caption-for="${uid}"], [data-frame-for="${uid}"]`).forEach(
        (input) => { input.disabled = !open || !box.checked; },
      );
    });
    languageSelect.disabled = !open;
    root.querySelectorAll("[data-write]").forEach((el) => { el.disabled = !open; });
    if (templateSelect) templateSelect.disabled = !open;
    const signed = report !== null && report.version.status === "final";
    if ($("sign-report")) $("sign-report").disabled = !canSign || conflict || report === null || signed;
    if ($("amend-report")) {
      $("amend-report").hidden = !signed;
      $("amend-reason").closest("label").hidden = !signed;
      $("amend-report").disabled = !canSign || conflict;
    }
    if ($("download-pdf")) $("download-pdf").hidden = report === null;
    if ($("print-pdf")) $("print-pdf").hidden = report === null;
  }

  function draftBody() {
    const body = {
      revision,
      language: languageSelect.value,
      template: templateSelect && templateSelect.value ? templateSelect.value : null,
      sections: {},
      key_images: [],
    };
    sections.forEach((area) => { body.sections[area.dataset.section] = area.value; });
    keyImages.filter((box) => box.checked).forEach((box) => {
      const caption = root.querySelector(`[data-caption-for="${box.dataset.sopInstanceUid}"]`);
      const frame = root.querySelector(`[data-frame-for="${box.dataset.sopInstanceUid}"]`);
      body.key_images.push({
        series_uid: box.dataset.seriesUid,
        sop_instance_uid: box.dataset.sopInstanceUid,
        frame: frame ? Number(frame.value) || 1 : 1,
        caption: caption ? caption.value : "",
      });
    });
    return body;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString(uiLang) : "";
  }

  function showVersions(versions) {
    const list = $("report-versions");
    list.replaceChildren();
    versions.forEach((version) => {
      const item = document.createElement("li");
      const badge = document.createElement("span");
      badge.className = `badge ${version.state}`;
      badge.textContent = words[`status${version.state[0].toUpperCase()}${version.state.slice(1)}`];
      const title = document.createElement("strong");
      title.textContent = words.version.replace("{n}", version.number);
      item.append(title, " ", badge);
      if (version.signed_at) {
        const by = document.createElement("div");
        by.className = "muted";
        by.textContent = `${words.signedBy}: ${version.signed_by_name || version.signed_by} · ${when(version.signed_at)}`;
        item.append(by);
      }
      const show = document.createElement("button");
      show.type = "button";
      show.className = "link-button";
      show.textContent = words.show;
      show.addEventListener("click", () => preview(version.number));
      item.append(show);
      if (canWrite) {
        const pdf = document.createElement("a");
        pdf.href = `${api}/pdf?version=${version.number}`;
        pdf.textContent = words.pdf;
        pdf.className = "version-pdf";
        item.append(" · ", pdf);
      }
      list.append(item);
    });
  }

  async function preview(number) {
    const { status, data } = await call("GET", `${api}/versions/${number}`);
    if (status !== 200) return;
    $("version-preview-title").textContent = words.version.replace("{n}", number);
    const body = $("version-preview-body");
    body.replaceChildren();
    Object.entries(data.sections).forEach(([key, text]) => {
      if (!text.trim()) return;
      const heading = document.createElement("h4");
      heading.textContent = sectionLabels[key] || key;
      const paragraph = document.createElement("p");
      paragraph.className = "version-text";
      paragraph.textContent = text;
      body.append(heading, paragraph);
    });
    $("version-preview").hidden = false;
  }

  function show(view) {
    report = view;
    revision = view.revision;
    const version = view.version;
    sections.forEach((area) => { area.value = version.sections[area.dataset.section] || ""; });
    languageSelect.value = version.language;
    if (templateSelect && version.template) templateSelect.value = version.template;
    const chosen = new Map(version.key_images.map((image) => [image.sop_instance_uid, image]));
    keyImages.forEach((box) => {
      const image = chosen.get(box.dataset.sopInstanceUid);
      box.checked = Boolean(image);
      const caption = root.querySelector(`[data-caption-for="${box.dataset.sopInstanceUid}"]`);
      if (caption) caption.value = image ? image.caption : "";
      const frame = root.querySelector(`[data-frame-for="${box.dataset.sopInstanceUid}"]`);
      if (frame && image) frame.value = image.frame;
    });
    const badge = $("report-status");
    badge.hidden = false;
    badge.className = `badge ${view.status}`;
    badge.textContent = words[`status${view.status[0].toUpperCase()}${view.status.slice(1)}`];
    $("report-version").textContent = words.version.replace("{n}", version.number);
    showVersions(view.versions);
    applyMode();
  }

  async function load() {
    conflict = false;
    $("reload-report").hidden = true;
    const { status, data } = await call("GET", api);
    if (status === 200) {
      show(data);
      say("");
    } else if (status === 404) {
      report = null;
      revision = null;
      if (templateSelect && !templateSelect.value) templateSelect.value = root.dataset.suggestedTemplate;
      say(canWrite ? words.new : words.noFinal);
      applyMode();
    } else {
      say(`${words.failed} ${(data && data.error) || status}`, "error");
    }
  }

  function lost() {
    conflict = true;
    clearTimeout(timer);
    say(words.conflict, "error");
    $("reload-report").hidden = false;
    applyMode();
  }

  async function save() {
    clearTimeout(timer);
    if (saving) await saving;
    if (!dirty || conflict || !editable()) return;
    dirty = false;
    say(words.saving);
    saving = call("PUT", api, draftBody());
    const { status, data } = await saving;
    saving = null;
    if (status === 200) {
      report = data;
      revision = data.revision;
      const badge = $("report-status");
      badge.hidden = false;
      badge.className = `badge ${data.status}`;
      badge.textContent = words.statusDraft;
      $("report-version").textContent = words.version.replace("{n}", data.version.number);
      showVersions(data.versions);
      applyMode();
      say(words.saved, "ok");
      if (dirty) schedule();
    } else if (status === 409) {
      lost();
    } else {
      dirty = true;
      say(`${words.failed} ${(data && data.error) || status}`, "error");
    }
  }

  function schedule() {
    dirty = true;
    clearTimeout(timer);
    timer = setTimeout(save, AUTOSAVE_MS);
  }

  async function insertTemplate() {
    const key = templateSelect.value;
    if (!key) return;
    const language = languageSelect.value;
    if (!templateCache[language]) {
      const { status, data } = await call("GET", `${api}/templates?language=${language}`);
      if (status !== 200) return;
      templateCache[language] = data;
    }
    const template = templateCache[language].templates.find((t) => t.key === key);
    if (!template) return;
    Object.entries(template.sections).forEach(([name, text]) => {
      const area = root.querySelector(`textarea[data-section="${name}"]`);
      if (!area) return;
      area.value = area.value.trim() ? `${area.value.trimEnd()}\n\n${text}` : text;
    });
    schedule();
  }

  async function sign() {
    if (!window.confirm(words.confirmSign)) return;
    await save();
    if (conflict) return;
    const { status, data } = await call("POST", `${api}/sign`, { revision });
    if (status === 200) {
      show(data);
      say(words.signed, "ok");
    } else if (status === 409) {
      lost();
    } else {
      say(`${words.failed} ${(data && data.error) || status}`, "error");
    }
  }

  async function amend() {
    const reason = $("amend-reason").value;
    const { status, data } = await call("POST", `${api}/amend`, { revision, reason });
    if (status === 200) {
      $("amend-reason").value = "";
      show(data);
      say(words.amending, "ok");
    } else if (status === 409) {
      lost();
    } else {
      say(`${words.failed} ${(data && data.error) || status}`, "error");
    }
  }

  sections.forEach((area) => area.addEventListener("input", () => { if (editable()) schedule(); }));
  languageSelect.addEventListener("change", () => { templateCache[languageSelect.value] = null; schedule(); });
  keyImages.forEach((box) => box.addEventListener("change", () => { applyMode(); schedule(); }));
  root.querySelectorAll(".key-image-caption, [data-frame-for]").forEach(
    (input) => input.addEventListener("input", schedule),
  );
  if ($("insert-template")) $("insert-template").addEventListener("click", insertTemplate);
  if ($("save-report")) $("save-report").addEventListener("click", () => { dirty = true; save(); });
  if ($("sign-report")) $("sign-report").addEventListener("click", sign);
  if ($("amend-report")) $("amend-report").addEventListener("click", amend);
  $("reload-report").addEventListener("click", () => { dirty = false; load(); });
  // A draft typed just before leaving the page is still sent (keepalive outlives the page).
  window.addEventListener("pagehide", () => {
    if (dirty && editable()) {
      fetch(api, {
        method: "PUT",
        keepalive: true,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(draftBody()),
      });
    }
  });
  load();
})();
