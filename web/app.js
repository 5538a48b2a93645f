// lookalike web page: pick a query image (or click one of the collection), POST it to {apiBase}/search,
// show the K most similar images; the Search and Duplicates views; settings. Plain browser JavaScript,
// no build step and no dependencies. Needs common.js, browse.js and duplicates.js (loaded before it).
(function () {
  "use strict";

  var L = window.Lookalike;
  var $ = L.$;
  // The server's limits (limits.js, generated from lookalike/limits.py): API Gateway + Lambda
  // (and `lookalike serve`) refuse a request body above maxBodyBytes.
  var LIMITS = window.LOOKALIKE_LIMITS;
  var MAX_BODY_BYTES = LIMITS.maxBodyBytes;
  // Files this big are not even decoded: no photo needs it and it would stall the tab.
  var MAX_FILE_BYTES = 64 * 1024 * 1024;
  var K_MIN = 1;
  var K_MAX = LIMITS.kMax;
  var BROWSE_HINT = "Choose, drop or paste an image, or click one in the collection, to find the ones that look alike.";

  var el = {
    form: $("search-form"), dropZone: $("drop-zone"), fileInput: $("file-input"), fileLabel: $("file-label"),
    figure: $("query-figure"), preview: $("query-preview"), placeholder: $("drop-placeholder"),
    placeholderText: $("placeholder-text"), caption: $("query-caption"),
    k: $("k-input"), filter: $("label-filter"),
    results: $("results"), resultsTitle: $("results-title"), status: $("status"), error: $("error"),
    timing: $("timing"), queryBar: $("query-bar"), queryBarThumb: $("query-bar-thumb"),
    queryBarText: $("query-bar-text"), back: $("back-to-browse"), browse: $("browse"),
    settings: $("settings"), settingsToggle: $("settings-toggle"),
    settingsForm: $("settings-form"), apiKey: $("api-key"), forgetKey: $("api-key-forget"),
    settingsEndpoint: $("settings-endpoint"), endpointLabel: $("endpoint-label"), info: $("collection-info"),
    viewSearch: $("view-search"), viewDuplicates: $("view-duplicates"),
    navSearch: $("nav-search"), navDuplicates: $("nav-duplicates"), dupTitle: $("dup-title")
  };

  var state = {
    // What the next search sends: {kind: "image", base64, name} (the bytes of a chosen file, maybe
    // downscaled) or {kind: "id", id, label, url} (an indexed image: "more like this", nothing uploaded).
    query: null,
    previewUrl: null,   // object URL shown as the query preview
    controller: null,   // AbortController of the request in flight
    seq: 0,             // increases per search; stale answers are dropped
    searches: 0,        // completed searches (exposed as data-searches on the grid)
    lastFailedAuth: false,
    browseScroll: null, // {y, id}: where the collection was left, to come back to it
    view: "search"
  };

  // ---------- messages ----------

  var errorLine = L.errorLine(el.error);
  var showError = errorLine.show;
  var clearError = errorLine.clear;

  function setStatus(message) {
    el.status.textContent = message;
  }

  function setBusy(busy) {
    el.results.setAttribute("aria-busy", busy ? "true" : "false");
    el.dropZone.classList.toggle("is-busy", busy);
  }

  var formatBytes = L.formatBytes;

  // ---------- browse mode (no query) and results mode ----------

  // tileId: the collection tile that started the search, to give focus back to on returning.
  function showResultsMode(tileId) {
    if (!el.browse.hidden) state.browseScroll = { y: window.scrollY, id: tileId || null };
    el.browse.hidden = true;
    el.results.hidden = false;
    el.queryBar.hidden = false;
    el.resultsTitle.textContent = "Results";
  }

  function backToBrowse() {
    if (state.controller) state.controller.abort();
    state.seq += 1;
    state.query = null;
    setBusy(false);
    clearError();
    resetPreview();
    el.results.replaceChildren();
    el.results.hidden = true;
    el.queryBar.hidden = true;
    el.timing.textContent = "";
    el.browse.hidden = false;
    el.resultsTitle.textContent = "Collection";
    setStatus(BROWSE_HINT);
    var saved = state.browseScroll;
    var tile = saved && saved.id ? L.browse.tileFor(saved.id) : null;
    if (saved) window.scrollTo(0, saved.y);
    if (tile) tile.querySelector(".card-button").focus({ preventScroll: true });
    else el.resultsTitle.focus({ preventScroll: true });
  }

  function showQueryBar() {
    var q = state.query;
    el.queryBarText.replaceChildren();
    var strong = document.createElement("strong");
    if (q.kind === "id") {
      el.queryBarThumb.src = L.thumbUrl(q.url);
      el.queryBarThumb.hidden = false;
      strong.textContent = q.label || "unlabelled";
      el.queryBarText.append("More like ", strong, " · " + q.id + " (from the collection)");
    } else {
      el.queryBarThumb.hidden = !state.previewUrl;
      if (state.previewUrl) el.queryBarThumb.src = state.previewUrl;
      strong.textContent = q.name;
      el.queryBarText.append("Like ", strong, " (your image)");
    }
  }

  // ---------- choosing the query image ----------

  function acceptImage(blob, name, fromUser) {
    if (fromUser && blob.type && blob.type.indexOf("image/") !== 0) {
      showError("“" + name + "” is not an image (" + blob.type + "). " +
        "Choose a JPEG, PNG, WebP, BMP, GIF or TIFF file.");
      return;
    }
    if (!blob.size) {
      showError("“" + name + "” is empty.");
      return;
    }
    if (blob.size > MAX_FILE_BYTES) {
      showError("“" + name + "” is " + formatBytes(blob.size) + ": too large to upload (max 6 MB per request).");
      return;
    }
    clearError();
    showBlobPreview(blob, name);
    var seq = ++state.seq;
    setBusy(true);
    setStatus("Preparing the image…");
    L.prepareUpload(blob, envelopeBytes()).then(function (prepared) {
      if (seq !== state.seq) return;
      state.query = { kind: "image", base64: prepared.base64, name: name };
      el.caption.textContent = name + " · " + formatBytes(blob.size) + (prepared.note ? " · " + prepared.note : "");
      runSearch();
    }, function (err) {
      if (seq !== state.seq) return;
      setBusy(false);
      state.query = null;
      showError(err.message || String(err));
      setStatus("");
    });
  }

  function setPreview(src, alt, caption) {
    el.preview.hidden = false;
    el.preview.alt = alt;
    el.preview.src = src;
    el.placeholder.hidden = true;
    el.placeholderText.textContent = "Drop an image here";
    el.caption.textContent = caption;
    el.dropZone.dataset.state = "ready";
    el.fileLabel.textContent = "Choose another image";
  }

  function showBlobPreview(blob, name) {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(blob);
    el.dropZone.dataset.source = "file";
    setPreview(state.previewUrl, "Query image: " + name, name);
  }

  // An indexed image as the query: its thumbnail at once (usually cached by the grid), then the full image.
  function showIndexedPreview(entry) {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = null;
    var label = entry.label || "unlabelled";
    el.dropZone.dataset.source = "collection";
    setPreview(L.thumbUrl(entry.url), "Query image: " + label + " · " + entry.id,
      label + " · " + entry.id + " · from the collection");
    var full = new Image();
    var wanted = L.resolveUrl(entry.url);
    full.onload = function () {
      if (state.query && state.query.kind === "id" && state.query.id === entry.id) el.preview.src = wanted;
    };
    full.src = wanted;
  }

  function resetPreview() {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = null;
    el.preview.hidden = true;
    el.preview.removeAttribute("src");
    el.preview.alt = "";
    el.placeholder.hidden = false;
    el.placeholderText.textContent = "Drop an image here";
    el.caption.textContent = "";
    el.dropZone.dataset.state = "empty";
    delete el.dropZone.dataset.source;
    el.fileLabel.textContent = "Choose an image";
  }

  // The browser cannot preview some formats (TIFF) or a broken file; the server still gets to judge it.
  el.preview.addEventListener("error", function () {
    if (!el.preview.getAttribute("src")) return;
    el.preview.hidden = true;
    el.placeholder.hidden = false;
    el.placeholderText.textContent = "No preview for this file";
  });

  // The JSON envelope besides the image: k and the label filter.
  function envelopeBytes() {
    return 200 + new Blob([el.filter.value]).size;
  }

  // "More like this": search with an indexed image's id. Nothing is downloaded or uploaded.
  L.moreLikeThis = function (entry, options) {
    if (state.view !== "search") showView("search", false, true);
    state.query = { kind: "id", id: String(entry.id), label: entry.label || "", url: String(entry.url) };
    showIndexedPreview(entry);
    runSearch({ focusResults: true, tileId: options && options.from === "collection" ? state.query.id : null });
  };

  // A dropped link: one of this API's images searches by id; any other URL is fetched and uploaded.
  function searchFromUrl(uri) {
    var id = L.idFromImageUrl(uri);
    if (id) {
      L.moreLikeThis({ id: id, label: "", url: uri }, { from: "drop" });
      return;
    }
    clearError();
    setBusy(true);
    setStatus("Loading the dropped image…");
    fetch(uri)
      .then(function (response) {
        if (!response.ok) throw new Error("Could not load that image (HTTP " + response.status + ").");
        return response.blob();
      })
      .then(function (blob) { acceptImage(blob, uri.split("/").pop().split("?")[0] || "dropped image", false); })
      .catch(function (err) {
        setBusy(false);
        setStatus("");
        showError(err instanceof TypeError
          ? "Could not load that image from " + uri + " (network or CORS)." : err.message);
      });
  }

  // ---------- searching ----------

  function readK() {
    var raw = el.k.value.trim();
    var k = Number(raw);
    if (!raw || !Number.isInteger(k) || k < K_MIN || k > K_MAX) return null;
    return k;
  }

  function runSearch(options) {
    options = options || {};
    clearError();
    var query = state.query;
    if (!query) {
      showError("Choose, drop or paste an image first, or click one in the collection.");
      return;
    }
    var k = readK();
    if (k === null) {
      showError("K must be a whole number from " + K_MIN + " to " + K_MAX + ".");
      el.k.focus();
      return;
    }
    var label = el.filter.value.trim();
    var body = query.kind === "id" ? { id: query.id, k: k } : { image: query.base64, k: k };
    if (label) body.filter = { label: label };
    var json = JSON.stringify(body);
    if (new Blob([json]).size > MAX_BODY_BYTES) {
      showError(L.tooLargeMessage());
      return;
    }

    if (state.controller) state.controller.abort();
    var controller = new AbortController();
    state.controller = controller;
    var seq = ++state.seq;
    showResultsMode(options.tileId);
    showQueryBar();
    setBusy(true);
    setStatus("Searching…");
    if (options.focusResults) el.resultsTitle.focus();
    var started = performance.now();

    L.request("POST", "/search", { body: json, signal: controller.signal })
      .then(function (answer) {
        if (seq !== state.seq) return;
        var roundTrip = performance.now() - started;
        setBusy(false);
        var response = answer.response;
        var payload = answer.payload;
        if (!response.ok) {
          var message = L.messageFor(response.status, payload);
          if (response.status === 404 && query.kind === "id") {
            message = "That image is no longer in the index (deleted or re-indexed). Go back to the collection " +
              "to see what it holds now.";
          }
          failSearch(message, L.isAuthStatus(response.status));
          return;
        }
        if (!payload || !Array.isArray(payload.results)) {
          failSearch("The search API answered with something unexpected.", false);
          return;
        }
        state.lastFailedAuth = false;
        render(payload.results, label, k, query);
        showTiming(payload.took_ms, roundTrip);
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") return;
        if (seq !== state.seq) return;
        setBusy(false);
        failSearch(L.networkMessage(), false);
      });
  }

  function failSearch(message, auth) {
    state.lastFailedAuth = auth;
    showError(message);
    setStatus("");
    el.timing.textContent = "";
    el.results.replaceChildren();
    if (auth) openSettings(true);
  }

  function showTiming(tookMs, roundTripMs) {
    var parts = [];
    if (typeof tookMs === "number") parts.push("server " + tookMs.toFixed(1) + " ms");
    parts.push("round trip " + Math.round(roundTripMs) + " ms");
    el.timing.textContent = parts.join(" · ");
  }

  function render(results, label, k, query) {
    var frag = document.createDocumentFragment();
    results.forEach(function (result, i) { frag.appendChild(resultCard(result, i + 1)); });
    el.results.replaceChildren(frag);
    state.searches += 1;
    el.results.dataset.searches = String(state.searches);
    el.results.dataset.query = query.kind === "id" ? query.id : "";
    L.addKnownLabels(results);
    if (!results.length) {
      setStatus(label ? "No indexed image has the label “" + label + "”" + (query.kind === "id" ? " besides the query." : ".")
        : (query.kind === "id" ? "The collection holds no other image." : "The collection is empty."));
    } else {
      setStatus(L.plural(results.length, "image") + (label ? " labelled “" + label + "”" : "") +
        (results.length < k ? " (all there are)" : "") + ", most similar first. Click one for more like it.");
    }
  }

  function resultCard(result, rank) {
    var label = result.label || "unlabelled";
    var score = L.formatScore(result.score);
    return L.card(result, {
      rank: rank,
      score: result.score,
      alt: "Result " + rank + ": " + label,
      name: "Result " + rank + ": " + label + ", score " + score + ". Find more like this.",
      fullLink: "result " + rank + " (" + label + ")",
      onActivate: function (entry) { L.moreLikeThis(entry, { from: "results" }); }
    });
  }

  // ---------- input wiring ----------

  el.fileInput.addEventListener("change", function () {
    var file = el.fileInput.files && el.fileInput.files[0];
    if (file) acceptImage(file, file.name, true);
    el.fileInput.value = "";  // choosing the same file again still fires change
  });

  el.figure.addEventListener("click", function () { el.fileInput.click(); });
  el.back.addEventListener("click", backToBrowse);

  ["dragenter", "dragover"].forEach(function (type) {
    el.dropZone.addEventListener(type, function (event) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      el.dropZone.classList.add("is-dragging");
    });
  });
  el.dropZone.addEventListener("dragleave", function (event) {
    if (!el.dropZone.contains(event.relatedTarget)) el.dropZone.classList.remove("is-dragging");
  });
  el.dropZone.addEventListener("drop", function (event) {
    event.preventDefault();
    el.dropZone.classList.remove("is-dragging");
    var dt = event.dataTransfer;
    if (dt.files && dt.files.length) {
      acceptImage(dt.files[0], dt.files[0].name, true);
      return;
    }
    var uri = (dt.getData("text/uri-list") || "").split(/\r?\n/).filter(function (line) {
      return line && line.charAt(0) !== "#";
    })[0];
    if (uri) {
      searchFromUrl(uri);
    } else {
      showError("Drop an image file here.");
    }
  });
  // A file dropped next to the drop zone must not replace the page.
  ["dragover", "drop"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (!el.dropZone.contains(event.target)) event.preventDefault();
    });
  });

  document.addEventListener("paste", function (event) {
    var items = (event.clipboardData && event.clipboardData.items) || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].kind === "file" && items[i].type.indexOf("image/") === 0) {
        var file = items[i].getAsFile();
        if (file) {
          event.preventDefault();
          if (state.view !== "search") showView("search", false, true);
          acceptImage(file, file.name && file.name !== "image.png" ? file.name : "pasted image", true);
          return;
        }
      }
    }
  });

  el.form.addEventListener("submit", function (event) {
    event.preventDefault();
    runSearch();
  });

  // ---------- views: #search (default) and #duplicates ----------

  // push: a new history entry (Back returns to the previous view), else the URL is only corrected.
  function showView(view, moveFocus, push) {
    state.view = view;
    var dup = view === "duplicates";
    el.viewSearch.hidden = dup;
    el.viewDuplicates.hidden = !dup;
    [[el.navSearch, !dup], [el.navDuplicates, dup]].forEach(function (pair) {
      if (pair[1]) pair[0].setAttribute("aria-current", "page"); else pair[0].removeAttribute("aria-current");
    });
    document.documentElement.dataset.view = view;
    if (dup) L.duplicates.show();
    var wanted = "#" + view;
    if (window.location.hash !== wanted && (window.location.hash || dup)) {
      history[push ? "pushState" : "replaceState"](null, "", wanted);
    }
    if (moveFocus) (dup ? el.dupTitle : el.resultsTitle).focus();
  }

  function viewFromHash() {
    var hash = window.location.hash.slice(1);
    return hash === "duplicates" || hash === "search" ? hash : null;
  }

  window.addEventListener("hashchange", function () {
    var view = viewFromHash();
    if (view && view !== state.view) showView(view, true);  // other fragments (#main) keep the view
  });

  // ---------- settings ----------

  function openSettings(focusKey) {
    el.settings.hidden = false;
    el.settingsToggle.setAttribute("aria-expanded", "true");
    el.apiKey.value = L.apiKey();
    if (focusKey) el.apiKey.focus();
  }

  L.onAuthFailure = function () { openSettings(true); };

  el.settingsToggle.addEventListener("click", function () {
    if (el.settings.hidden) {
      openSettings(true);
    } else {
      el.settings.hidden = true;
      el.settingsToggle.setAttribute("aria-expanded", "false");
    }
  });

  el.settingsForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var key = el.apiKey.value.trim();
    L.saveKey(key);
    setStatus(key ? "API key saved." : "API key cleared.");
    el.settings.hidden = true;
    el.settingsToggle.setAttribute("aria-expanded", "false");
    if (state.query && state.lastFailedAuth) runSearch();
    L.browse.retry();
    L.duplicates.retry();
    loadHealth();
  });

  el.settings.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    el.settings.hidden = true;
    el.settingsToggle.setAttribute("aria-expanded", "false");
    el.settingsToggle.focus();
  });

  el.forgetKey.addEventListener("click", function () {
    L.forgetKey();
    el.apiKey.value = L.config.configKey;
    setStatus("API key forgotten for " + L.apiLabel() + ".");
  });

  // ---------- start ----------

  function loadHealth() {
    el.endpointLabel.textContent = L.apiLabel();
    el.settingsEndpoint.textContent = L.apiLabel();
    fetch(L.endpoint("/healthz"), { headers: L.authHeaders() })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (health) {
        if (!health || typeof health.count !== "number") return;
        var parts = [health.count.toLocaleString() + " images indexed"];
        if (health.model) parts.push("model " + health.model + (health.dim ? " (" + health.dim + "-d)" : ""));
        parts.push("API " + L.apiLabel());
        el.info.textContent = parts.join(" · ");
        el.info.dataset.count = String(health.count);
      })
      .catch(function () { /* the footer keeps showing the API address */ });
  }

  if (L.config.warning) showError(L.config.warning);
  el.k.max = String(K_MAX);
  document.documentElement.dataset.apiSource = L.config.source;
  showView(viewFromHash() || "search", false);
  loadHealth();
  L.browse.start();
  document.documentElement.dataset.ready = "true";
})();
