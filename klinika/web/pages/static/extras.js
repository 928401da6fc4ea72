// The console's extras: print buttons, the report's print copy, the tag browser's filter.
// No inline code (CSP).
"use strict";
(() => {
  // <button data-print>: print what is on screen (the print style sheet leaves the chrome out)
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-print]");
    if (button) window.print();
  });

  // The report editor prints its sections as text (a textarea prints only what it shows).
  const printCopy = document.getElementById("report-print");
  function fillReportPrint() {
    if (!printCopy) return;
    printCopy.replaceChildren();
    document.querySelectorAll("textarea[data-section]").forEach((area) => {
      if (!area.value.trim()) return;
      const label = document.querySelector(`label[for="${area.id}"]`);
      const heading = document.createElement("h2");
      heading.textContent = label ? label.textContent : area.dataset.section;
      const text = document.createElement("p");
      text.textContent = area.value;
      printCopy.append(heading, text);
    });
  }
  window.addEventListener("beforeprint", fillReportPrint);
  if (printCopy) {
    document.addEventListener("input", fillReportPrint);
    window.addEventListener("load", () => setTimeout(fillReportPrint, 0));
  }

  // The tag browser: show the rows whose tag, name or value contain what is typed.
  const filter = document.getElementById("tag-filter");
  if (filter) {
    const rows = Array.from(document.querySelectorAll("table.tags tbody tr[data-tag]"));
    filter.addEventListener("input", () => {
      const wanted = filter.value.trim().toLowerCase();
      rows.forEach((row) => {
        row.hidden = Boolean(wanted) && !row.textContent.toLowerCase().includes(wanted);
      });
    });
  }
})();
