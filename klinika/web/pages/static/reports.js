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
  const keyData = document.getElementById("key-image-data");
  const keySeries = keyData ? JSON.parse(keyData.textContent) : [];
  // where each (instance, frame) lies: series index and 1-based slice position
  const slicePlace = new Map();
  keySeries.forEach((series, s) => series.slices.forEach(([sop, frame], i) => {
    slicePlace.set(`${sop}/${frame}`, { series: s, slice: i + 1 });
  }));
  let keyImages = []; // [{series_uid, sop_instance_uid, frame, caption}]
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
    root.querySelectorAll("#key-image-list input, #key-image-list button").forEach(
      (input) => { input.disabled = !open; },
    );
    languageSelect.disabled = !open;
    root.querySelectorAll("[data-write]").forEach((el) => { el.disabled = !open; });
    if (templateSelect) templateSelect.disabled = !open;
    const signed = report !== null && report.version.status === "final";
    if ($("sign-report")) $("sign-report").disabled = !canSign || conflict || report === null || signed;
    if ($("amend-report")) {
      $("amend-report").hidden = !signed;
      $("amend-reason").closest("label").hidden = !signed;
      $("amend-report").disabled = !canSign || conflict || !$("amend-reason").value.trim();
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
    body.key_images = keyImages.map((image) => ({ ...image }));
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
    keyImages = version.key_images.map((image) => ({
      series_uid: image.series_uid,
      sop_instance_uid: image.sop_instance_uid,
      frame: image.frame,
      caption: image.caption || "",
    }));
    showKeyImages();
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
      if (!text.trim() || area.value.includes(text.trim())) return; // inserted already
      area.value = area.value.trim() ? `${area.value.trimEnd()}\n\n${text}` : text;
    });
    schedule();
  }

  // ---------------------------------------------------------------- key images
  function frameUrl(seriesUid, sopUid, frame, kind) {
    const study = encodeURIComponent(root.dataset.studyUid);
    return `/dicom-web/studies/${study}/series/${encodeURIComponent(seriesUid)}/instances/`
      + `${encodeURIComponent(sopUid)}/frames/${frame}/${kind}`;
  }

  function keyImageTitle(image) {
    const place = slicePlace.get(`${image.sop_instance_uid}/${image.frame}`);
    if (!place) return image.sop_instance_uid;
    const series = keySeries[place.series];
    return words.keyImageTitle.replace("{series}", series.number ?? place.series + 1)
      .replace("{slice}", place.slice).replace("{total}", series.slices.length);
  }

  function showKeyImages() {
    const list = $("key-image-list");
    if (!list) return;
    list.replaceChildren();
    keyImages.forEach((image, index) => {
      const item = document.createElement("li");
      item.className = "key-image";
      item.dataset.sopInstanceUid = image.sop_instance_uid;
      item.dataset.frame = image.frame;
      const picture = document.createElement("img");
      picture.src = frameUrl(image.series_uid, image.sop_instance_uid, image.frame, "thumbnail");
      picture.alt = keyImageTitle(image);
      picture.width = 96;
      picture.height = 96;
      const title = document.createElement("span");
      title.className = "key-image-title";
      title.textContent = keyImageTitle(image);
      const caption = document.createElement("input");
      caption.type = "text";
      caption.className = "key-image-caption";
      caption.maxLength = 200;
      caption.placeholder = words.caption;
      caption.setAttribute("aria-label", `${words.caption}: ${keyImageTitle(image)}`);
      caption.value = image.caption;
      caption.addEventListener("input", () => { keyImages[index].caption = caption.value; schedule(); });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "link-button key-image-remove";
      remove.textContent = words.remove;
      remove.addEventListener("click", () => {
        keyImages.splice(index, 1);
        showKeyImages();
        schedule();
      });
      item.append(picture, title, caption, remove);
      list.append(item);
    });
    applyMode();
  }

  function addKeyImage(image) {
    const known = keyImages.some((chosen) => chosen.sop_instance_uid === image.sop_instance_uid
      && chosen.frame === image.frame);
    if (known) return false;
    keyImages.push({ caption: "", ...image });
    showKeyImages();
    schedule();
    return true;
  }

  function setUpKeyImageBrowser() {
    const seriesSelect = $("key-series");
    if (!seriesSelect || !keySeries.length) return;
    const slider = $("key-slice");
    const number = $("key-slice-number");
    const current = () => {
      const series = keySeries[Number(seriesSelect.value)];
      const position = Math.min(Math.max(Number(slider.value) || 1, 1), series.slices.length);
      return { series, position, slice: series.slices[position - 1] };
    };
    const showSlice = () => {
      const { series, position, slice } = current();
      const [sop, frame, instanceNumber] = slice;
      number.value = position;
      $("key-slice-label").textContent = words.sliceOf.replace("{slice}", position)
        .replace("{total}", series.slices.length).replace("{number}", instanceNumber ?? "—");
      $("key-preview").src = frameUrl(series.series_uid, sop, frame, "rendered");
    };
    const chooseSeries = () => {
      const { series } = current();
      slider.max = series.slices.length;
      number.max = series.slices.length;
      slider.value = Math.ceil(series.slices.length / 2);
      showSlice();
    };
    seriesSelect.addEventListener("change", chooseSeries);
    slider.addEventListener("input", showSlice);
    number.addEventListener("change", () => { slider.value = number.value; showSlice(); });
    $("add-key-image").addEventListener("click", () => {
      const { series, slice } = current();
      addKeyImage({ series_uid: series.series_uid, sop_instance_uid: slice[0], frame: slice[1] });
    });
    chooseSeries();
  }

  // The viewer's Key image button (viewer-extras.js) tells an open editor of the same study,
  // which adds the image to its draft; with no editor open, the viewer saves it itself.
  if ("BroadcastChannel" in window) {
    const channel = new BroadcastChannel("klinika-key-images");
    channel.addEventListener("message", (event) => {
      const message = event.data || {};
      if (message.type !== "add" || message.study_uid !== root.dataset.studyUid) return;
      if (!editable()) {
        channel.postMessage({ type: "refused", id: message.id });
        return;
      }
      addKeyImage(message.image);
      channel.postMessage({ type: "added", id: message.id });
      say(words.keyImageAdded, "ok");
    });
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
    if (!reason.trim()) {
      say(words.reasonNeeded, "error");
      $("amend-reason").focus();
      return;
    }
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
  if ($("amend-reason")) $("amend-reason").addEventListener("input", applyMode);
  setUpKeyImageBrowser();
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
