// Klinika pages: the little JavaScript they share. No framework, no inline scripts (CSP).
"use strict";
document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.hasAttribute("data-autosubmit")) {
    target.form.submit();
  }
});
// Forms that change something irreversible ask first: <form data-confirm="question">.
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
// Moments written in UTC (<time datetime="…" data-local="LANG">) shown in the browser's own
// time zone and the page's language, to the second.
document.querySelectorAll("time[data-local]").forEach((node) => {
  const moment = new Date(node.getAttribute("datetime"));
  if (Number.isNaN(moment.getTime())) {
    return;
  }
  node.title = node.textContent;
  node.textContent = moment.toLocaleString(node.dataset.local || undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
});
