// Upload page: files, folders and ZIPs (chosen or dropped) are sent one per request to
// /upload/files with progress; the answer lists each instance's outcome.
"use strict";
(function () {
  const root = document.getElementById("upload");
  if (!root) {
    return;
  }
  const text = root.dataset;
  const tbody = document.querySelector("#results tbody");
  const total = document.getElementById("total-progress");
  const summary = document.getElementById("summary");
  const counts = { stored: 0, duplicate: 0, rejected: 0 };
  const reasons = JSON.parse(text.reasons || "{}");
  const queue = [];
  const studies = new Map();
  const cancel = document.getElementById("cancel-upload");
  let bytesTotal = 0;
  let bytesDone = 0;
  let running = false;
  let current = null;

  // The studies this upload stored (or found stored): a link to each in the viewer and to
  // its patient in the worklist.
  function noteStudy(result) {
    if (!result.study_uid || studies.has(result.study_uid)) {
      return;
    }
    studies.set(result.study_uid, result.patient_id);
    const item = document.createElement("li");
    item.dataset.study = result.study_uid;
    const worklist = document.createElement("a");
    worklist.href = `/worklist?pid=${encodeURIComponent(result.patient_id || "")}`;
    worklist.textContent = result.patient_id || result.study_uid;
    const viewer = document.createElement("a");
    viewer.className = "button";
    viewer.href = `/viewer?StudyInstanceUIDs=${encodeURIComponent(result.study_uid)}`;
    viewer.textContent = text.view;
    item.append(worklist, " ", viewer);
    document.getElementById("stored-list").append(item);
    document.getElementById("stored-studies").hidden = false;
  }

  // Cancel: the file being sent is aborted, the waiting ones are not sent.
  cancel.addEventListener("click", () => {
    queue.splice(0).forEach((item) => {
      item.outcome.textContent = text.cancelled;
      item.outcome.className = "warn";
      item.outcome.dataset.status = "cancelled";
    });
    if (current) {
      current.cancelled = true;
      current.abort();
    }
  });

  function cell(content) {
    const td = document.createElement("td");
    if (content instanceof Node) {
      td.append(content);
    } else {
      td.textContent = content;
    }
    return td;
  }

  function add(file, name) {
    const progress = document.createElement("progress");
    progress.max = file.size || 1;
    progress.value = 0;
    const outcome = cell(text.waiting);
    const row = document.createElement("tr");
    row.append(cell(name), cell(progress), outcome);
    tbody.append(row);
    queue.push({ file, name, progress, outcome });
    cancel.hidden = false;
    bytesTotal += file.size;
    total.max = bytesTotal || 1;
    if (!running) {
      next();
    }
  }

  function showSummary() {
    summary.textContent = text.summary
      .replace("%(stored)s", counts.stored)
      .replace("%(duplicate)s", counts.duplicate)
      .replace("%(rejected)s", counts.rejected);
  }

  function report(item, answer) {
    item.outcome.textContent = "";
    const list = document.createElement("ul");
    list.className = "outcomes";
    answer.results.forEach((result) => {
      counts[result.status] = (counts[result.status] || 0) + 1;
      const line = document.createElement("li");
      line.className = result.status === "rejected" ? "error" : result.status === "stored" ? "ok" : "warn";
      line.dataset.status = result.status;
      let words = text[result.status] || result.status;
      if (answer.results.length > 1) {
        words = `${result.name}: ${words}`;
      }
      if (result.status === "rejected") {
        const why = reasons[result.reason];
        words += ` — ${why ? `${why} (${result.message || result.reason})` : result.message || result.reason}`;
        line.title = result.message || "";
      } else {
        noteStudy(result);
      }
      line.textContent = words;
      list.append(line);
    });
    item.outcome.append(list);
    showSummary();
  }

  function next() {
    const item = queue.shift();
    if (!item) {
      running = false;
      current = null;
      cancel.hidden = true;
      return;
    }
    running = true;
    item.outcome.textContent = text.sending;
    const request = new XMLHttpRequest();
    current = request;
    request.open("POST", "/upload/files");
    request.setRequestHeader("Content-Type", "application/octet-stream");
    request.setRequestHeader("X-Filename", encodeURIComponent(item.name));
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf) request.setRequestHeader("X-CSRF-Token", csrf.content);
    request.upload.addEventListener("progress", (event) => {
      item.progress.value = event.loaded;
      total.value = bytesDone + event.loaded;
    });
    request.addEventListener("loadend", () => {
      bytesDone += item.file.size;
      total.value = bytesDone;
      item.progress.value = item.progress.max;
      if (request.status === 200) {
        report(item, JSON.parse(request.responseText));
      } else if (request.cancelled) {
        item.outcome.textContent = text.cancelled; // aborted by Cancel
        item.outcome.className = "warn";
        item.outcome.dataset.status = "cancelled";
      } else {
        item.outcome.textContent = `${text.failed} (${request.status})`;
        item.outcome.className = "error";
      }
      next();
    });
    request.send(item.file);
  }

  // Folders dropped on the page: walk them with the File and Directory Entries API.
  function walk(entry, path) {
    if (entry.isFile) {
      entry.file((file) => add(file, path + file.name));
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      const read = () => reader.readEntries((entries) => {
        entries.forEach((child) => walk(child, `${path}${entry.name}/`));
        if (entries.length) {
          read();
        }
      });
      read();
    }
  }

  const dropzone = document.getElementById("dropzone");
  dropzone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    [...event.dataTransfer.items].forEach((item) => {
      const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
      if (entry) {
        walk(entry, "");
      } else if (item.kind === "file") {
        const file = item.getAsFile();
        add(file, file.name);
      }
    });
  });
  ["file-input", "folder-input"].forEach((id) => {
    document.getElementById(id).addEventListener("change", (event) => {
      [...event.target.files].forEach((file) => add(file, file.webkitRelativePath || file.name));
      event.target.value = "";
    });
  });
  dropzone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      document.getElementById("file-input").click();
    }
  });
})();
