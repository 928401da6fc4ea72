// Klinika's additions to the OHIF viewer: who is logged in, language, Report, back to the
// worklist, log out. window.klinika comes from /app-config.js (generated per user).
"use strict";
(function () {
  const klinika = window.klinika;
  if (!klinika) {
    return;
  }
  const strings = klinika.strings;
  // [code, name] pairs, "auto" first: the server's one language list (klinika.i18n)
  const languages = klinika.languages;

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function studyUid() {
    const params = new URLSearchParams(window.location.search);
    const uids = params.get("StudyInstanceUIDs") || params.get("studyInstanceUIDs") || "";
    return uids.split(",")[0];
  }

  function setCookie(name, value) {
    // "auto" forgets the choice: the browser's language again
    const age = value === "auto" ? 0 : 31536000;
    document.cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=${age}; samesite=strict`;
  }

  async function chooseLanguage(language) {
    await fetch("/api/auth/me/language", {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ language }),
    });
    setCookie("klinika_lang", language);
    setCookie("i18next", language);
    if (language === "auto") {
      window.localStorage.removeItem("i18nextLng");
    } else {
      window.localStorage.setItem("i18nextLng", language);
    }
    const url = new URL(window.location.href);
    url.searchParams.delete("lng");
    window.location.replace(url.toString());
  }

  async function logOut() {
    // the console's CSRF token is the klinika_csrf cookie (double submit)
    const csrf = document.cookie.split("; ").find((c) => c.startsWith("klinika_csrf="));
    const headers = csrf ? { "X-CSRF-Token": decodeURIComponent(csrf.split("=")[1]) } : {};
    await fetch("/logout", { method: "POST", redirect: "manual", headers });
    window.location.assign("/login");
  }

  // The user menu: name and role, language, log out.
  function userMenu() {
    const menu = element("div", { id: "klinika-menu" });
    const toggle = element("button", {
      type: "button", id: "klinika-user", "aria-haspopup": "true", "aria-expanded": "false",
      "aria-controls": "klinika-menu-panel",
    }, `${klinika.user.displayName} ▾`);
    const panel = element("div", { id: "klinika-menu-panel", hidden: "" });
    panel.append(element("div", { class: "role", id: "klinika-role" }, klinika.user.roleLabel));
    const label = element("label", {}, strings.language);
    const select = element("select", { id: "klinika-language" });
    languages.forEach(([code, name]) => {
      const option = element("option", { value: code }, name);
      option.selected = code === (klinika.languageChoice || klinika.language);
      select.append(option);
    });
    select.addEventListener("change", () => chooseLanguage(select.value));
    label.append(select);
    panel.append(label);
    panel.append(element("a", { href: "/account/password", id: "klinika-password" }, strings.password));
    const logout = element("button", { type: "button", id: "klinika-logout" }, strings.logout);
    logout.addEventListener("click", logOut);
    panel.append(logout);
    toggle.addEventListener("click", () => {
      const open = panel.hasAttribute("hidden");
      panel.toggleAttribute("hidden", !open);
      toggle.setAttribute("aria-expanded", String(open));
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !panel.hasAttribute("hidden")) {
        panel.setAttribute("hidden", "");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
    menu.append(toggle, panel);
    return menu;
  }

  function build() {
    const bar = element("div", { id: "klinika-bar", role: "toolbar", "aria-label": "Klinika" });
    const brand = element("span", { class: "klinika-brand" }, "Klinika ");
    brand.append(element("span", {}, "PACS"));
    bar.append(brand);
    bar.append(element("a", { href: "/worklist", id: "klinika-worklist" }, strings.backToWorklist));
    const uid = studyUid();
    if (uid && klinika.user.canReport) {
      bar.append(element("a", {
        href: `/reports/${encodeURIComponent(uid)}`, id: "klinika-report", target: "_blank", rel: "noopener",
      }, strings.report));
    }
    bar.append(userMenu());
    document.body.append(bar);
  }

  // OHIF's own "study not found" page (a client-side route) is replaced by ours, in the
  // user's language, with the way back to our worklist.
  const missingRoutes = ["/notfoundstudy", "/notfoundserver"];
  const firstStudy = studyUid();
  function leaveMissing() {
    const path = window.location.pathname;
    if (missingRoutes.includes(path) && !window.location.search.includes("klinika=1")) {
      const query = new URLSearchParams({ klinika: "1", StudyInstanceUIDs: firstStudy });
      window.location.replace(`${path}?${query}`);
    }
  }
  ["pushState", "replaceState"].forEach((name) => {
    const original = window.history[name].bind(window.history);
    window.history[name] = (...args) => {
      const result = original(...args);
      leaveMissing();
      return result;
    };
  });
  window.addEventListener("popstate", leaveMissing);

  // OHIF's language follows ours: i18next reads ?lng= first, then its cookie.
  const params = new URLSearchParams(window.location.search);
  if (!params.get("lng") && window.localStorage.getItem("i18nextLng") !== klinika.language) {
    window.localStorage.setItem("i18nextLng", klinika.language);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", build);
  } else {
    build();
  }
})();
