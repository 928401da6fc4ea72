// Klinika's additions to OHIF beyond the bar (viewer.js): the Key image button, which adds the
// image shown in the active viewport to the study's report, and a warning before a large
// volume is loaded in a 3D layout on a renderer without a GPU. Uses what OHIF exposes on
// window (services, commandsManager); window.klinika comes from /app-config.js.
"use strict";
(function () {
  const klinika = window.klinika;
  if (!klinika) {
    return;
  }
  const strings = klinika.strings;
  //: OHIF's hanging protocols that ray-cast the volume (its layout selector's 3D presets);
  //: any other protocol with a volume3d viewport counts too (see isThreeD)
  const THREE_D_PROTOCOLS = new Set(["only3D", "main3D", "primary3D", "mprAnd3DVolumeViewport"]);
  //: above this many voxels a software renderer takes minutes (300 slices of 512² took 7)
  const LARGE_VOLUME_VOXELS = 16 * 1024 * 1024;
  const SOFTWARE_RENDERERS = /swiftshader|llvmpipe|softpipe|software|basic render/i;
  const IMAGE_ID = /\/studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/?]+)(?:\/frames\/(\d+))?/;

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  function fill(text, values) {
    return Object.entries(values).reduce((out, [name, value]) => out.split(`{${name}}`).join(value), text);
  }

  function toast(text, kind) {
    let box = document.getElementById("klinika-toast");
    if (!box) {
      box = element("div", { id: "klinika-toast", role: "status", "aria-live": "polite" });
      document.body.append(box);
    }
    box.textContent = text;
    box.className = kind || "";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  // ------------------------------------------------------------------ key image
  function activeViewport() {
    const services = window.services;
    if (!services) return null;
    const id = services.viewportGridService.getActiveViewportId();
    return { id, viewport: services.cornerstoneViewportService.getCornerstoneViewport(id) };
  }

  function shownImage() {
    const active = activeViewport();
    const viewport = active && active.viewport;
    const imageId = viewport && viewport.getCurrentImageId ? viewport.getCurrentImageId() : null;
    const found = imageId ? IMAGE_ID.exec(imageId) : null;
    if (!found) return null;
    const [, study, series, sop, frame] = found.map((part) => part && decodeURIComponent(part));
    const instance = window.cornerstone && window.cornerstone.metaData
      ? window.cornerstone.metaData.get("instance", imageId) : null;
    return {
      study_uid: study,
      image: { series_uid: series, sop_instance_uid: sop, frame: Number(frame) || 1 },
      seriesNumber: instance && instance.SeriesNumber,
      instanceNumber: instance && instance.InstanceNumber,
    };
  }

  // An open report editor of the study takes the image into its draft (no conflict with its
  // autosave); without one, the draft is changed through the report API.
  function offerToEditor(shown) {
    return new Promise((resolve) => {
      if (!("BroadcastChannel" in window)) {
        resolve(null);
        return;
      }
      const channel = new BroadcastChannel("klinika-key-images");
      const id = `${Date.now()}-${Math.random()}`;
      const done = (answer) => {
        clearTimeout(timer);
        channel.close();
        resolve(answer);
      };
      const timer = setTimeout(() => done(null), 700);
      channel.addEventListener("message", (event) => {
        const message = event.data || {};
        if (message.id === id) done(message.type);
      });
      channel.postMessage({ type: "add", id, study_uid: shown.study_uid, image: shown.image });
    });
  }

  async function addKeyImage() {
    const shown = shownImage();
    if (!shown) {
      toast(strings.keyImageNone, "error");
      return;
    }
    const answer = await offerToEditor(shown);
    if (answer === "added") {
      toast(strings.keyImageOpenEditor, "ok");
      return;
    }
    const response = await fetch(
      `/api/studies/${encodeURIComponent(shown.study_uid)}/report/key-images`,
      {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(shown.image),
      },
    );
    if (response.ok) {
      toast(fill(strings.keyImageAdded, {
        series: shown.seriesNumber ?? "—", image: shown.instanceNumber ?? shown.image.frame,
      }), "ok");
    } else {
      let reason = String(response.status);
      try {
        reason = (await response.json()).error || reason;
      } catch (_error) { /* not JSON */ }
      toast(`${strings.keyImageFailed} ${reason}`, "error");
    }
  }

  // A button of its own at the bottom left (below OHIF's study browser), not in our bar:
  // the bar shares OHIF's header with its toolbar and must not grow.
  function addKeyImageButton() {
    if (!klinika.user.canWriteReport || document.getElementById("klinika-key-image")) return;
    if (!window.services || !document.body) return;
    const button = element("button", {
      type: "button", id: "klinika-key-image", title: strings.keyImageTitle,
    }, `★ ${strings.keyImage}`);
    button.addEventListener("click", addKeyImage);
    document.body.append(button);
  }

  // ------------------------------------------------------------------ 3D warning
  function renderer() {
    const canvas = document.createElement("canvas");
    const gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
    if (!gl) return { name: "", slow: true };
    const info = gl.getExtension("WEBGL_debug_renderer_info");
    const name = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    const lose = gl.getExtension("WEBGL_lose_context");
    if (lose) lose.loseContext();
    return { name, slow: SOFTWARE_RENDERERS.test(name) };
  }

  function voxelsOf(displaySet) {
    const instances = (displaySet && displaySet.instances) || [];
    return instances.reduce((sum, instance) => sum
      + (Number(instance.Rows) || 0) * (Number(instance.Columns) || 0)
      * (Number(instance.NumberOfFrames) || 1), 0);
  }

  // The volume a 3D layout would load: the active viewport's series when it is a volume,
  // else the largest volume of the study (the 3D layouts pick a reconstructable series).
  function volumeVoxels() {
    const services = window.services;
    const active = activeViewport();
    if (!services || !active) return 0;
    const state = services.viewportGridService.getState();
    const viewport = state.viewports.get ? state.viewports.get(active.id) : state.viewports[active.id];
    const shown = ((viewport && viewport.displaySetInstanceUIDs) || [])
      .map((uid) => services.displaySetService.getDisplaySetByUID(uid))
      .filter((displaySet) => displaySet && displaySet.isReconstructable);
    const candidates = shown.length ? shown : services.displaySetService.getActiveDisplaySets()
      .filter((displaySet) => displaySet.isReconstructable);
    return Math.max(0, ...candidates.map(voxelsOf));
  }

  function confirmLargeVolume(voxels, rendererName) {
    return new Promise((resolve) => {
      const dialog = element("div", {
        id: "klinika-3d-warning", role: "alertdialog", "aria-modal": "true",
        "aria-labelledby": "klinika-3d-warning-title", "aria-describedby": "klinika-3d-warning-text",
      });
      const box = element("div", { class: "klinika-dialog" });
      box.append(
        element("h2", { id: "klinika-3d-warning-title" }, strings.volumeWarningTitle),
        element("p", { id: "klinika-3d-warning-text" }, fill(strings.volumeWarning, {
          voxels: (voxels / 1e6).toLocaleString(klinika.language, { maximumFractionDigits: 1 }),
          renderer: rendererName || "?",
        })),
      );
      const buttons = element("div", { class: "klinika-dialog-buttons" });
      const cancel = element("button", { type: "button", id: "klinika-3d-cancel" }, strings.cancel);
      const load = element("button", { type: "button", id: "klinika-3d-load" }, strings.volumeLoadAnyway);
      const close = (answer) => {
        dialog.remove();
        resolve(answer);
      };
      cancel.addEventListener("click", () => close(false));
      load.addEventListener("click", () => close(true));
      dialog.addEventListener("keydown", (event) => { if (event.key === "Escape") close(false); });
      buttons.append(cancel, load);
      box.append(buttons);
      dialog.append(box);
      document.body.append(dialog);
      cancel.focus();
    });
  }

  function isThreeD(protocolId) {
    if (THREE_D_PROTOCOLS.has(protocolId)) return true;
    try {
      const protocol = window.services.hangingProtocolService.getProtocolById(protocolId);
      return JSON.stringify((protocol && protocol.stages) || []).includes('"volume3d"');
    } catch (_error) {
      return false;
    }
  }

  // OHIF's layout selector runs setHangingProtocol through the commands manager: the 3D
  // layouts wait for the user's answer when the volume is large and the renderer slow.
  function guardThreeD(commandsManager) {
    if (typeof commandsManager.runCommand !== "function" || commandsManager.klinikaGuarded) return;
    commandsManager.klinikaGuarded = true;
    const original = commandsManager.runCommand.bind(commandsManager);
    let slow = null;
    commandsManager.runCommand = function (name, options, context) {
      const protocolId = options && options.protocolId;
      if (name === "setHangingProtocol" && protocolId && isThreeD(protocolId)) {
        slow = slow || renderer();
        const voxels = volumeVoxels();
        if (slow.slow && voxels > LARGE_VOLUME_VOXELS) {
          confirmLargeVolume(voxels, slow.name).then((go) => {
            if (go) original(name, options, context);
          });
          return undefined;
        }
      }
      return original(name, options, context);
    };
  }

  // OHIF creates its commands manager (more than once while it starts) and viewer.js our bar
  // after this script runs: look for both now and then (two property reads).
  setInterval(() => {
    if (window.commandsManager) guardThreeD(window.commandsManager);
    addKeyImageButton();
  }, 400);
})();
