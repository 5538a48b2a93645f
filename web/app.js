// lookalike web page: pick a query image, POST it to {apiBase}/search, show the K most similar images.
// Plain browser JavaScript, no build step and no dependencies.
(function () {
  "use strict";

  // The server's limits (limits.js, generated from lookalike/limits.py): API Gateway + Lambda
  // (and `lookalike serve`) refuse a request body above maxBodyBytes.
  var LIMITS = window.LOOKALIKE_LIMITS;
  var MAX_BODY_BYTES = LIMITS.maxBodyBytes;
  // Base64 grows data by 4/3, so images above ~4 MB or 4096 px are re-encoded before upload.
  var DOWNSCALE_BYTES = 4 * 1024 * 1024;
  var MAX_SIDE = 4096;
  var JPEG_QUALITY = 0.92;
  // Files this big are not even decoded: no photo needs it and it would stall the tab.
  var MAX_FILE_BYTES = 64 * 1024 * 1024;
  var K_MIN = 1;
  var K_MAX = LIMITS.kMax;
  var KEY_STORE = "lookalike.apiKeys";

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    form: $("search-form"), dropZone: $("drop-zone"), fileInput: $("file-input"), fileLabel: $("file-label"),
    figure: $("query-figure"), preview: $("query-preview"), placeholder: $("drop-placeholder"),
    placeholderText: $("placeholder-text"), caption: $("query-caption"),
    k: $("k-input"), filter: $("label-filter"), knownLabels: $("known-labels"),
    results: $("results"), resultsTitle: $("results-title"), status: $("status"), error: $("error"),
    timing: $("timing"), settings: $("settings"), settingsToggle: $("settings-toggle"),
    settingsForm: $("settings-form"), apiKey: $("api-key"), forgetKey: $("api-key-forget"),
    settingsEndpoint: $("settings-endpoint"), endpointLabel: $("endpoint-label"), info: $("collection-info")
  };

  var config = resolveConfig(window.LOOKALIKE_CONFIG || {}, window.location);
  var state = {
    image: null,        // base64 of the bytes sent to the API (maybe downscaled)
    previewUrl: null,   // object URL shown as the query preview
    controller: null,   // AbortController of the request in flight
    seq: 0,             // increases per search; stale answers are dropped
    searches: 0,        // completed searches (exposed as data-searches on the grid)
    lastFailedAuth: false,
    labels: new Set()
  };

  // ---------- configuration ----------

  function resolveConfig(raw, location) {
    var base = normaliseBase(raw.apiBase || "");
    var out = { apiBase: base, configKey: String(raw.apiKey || ""), source: "config.js", warning: "" };
    var fromQuery = new URLSearchParams(location.search).get("api");
    if (fromQuery && fromQuery.trim()) {
      var candidate = normaliseBase(fromQuery.trim());
      if (/^https?:\/\/[^/]/i.test(candidate)) {
        if (candidate !== base) {
          out.configKey = "";  // the key in config.js belongs to the API in config.js only
        }
        out.apiBase = candidate;
        out.source = "?api=";
      } else {
        out.warning = "Ignoring ?api=" + fromQuery + ": it must be an http(s):// URL.";
      }
    }
    return out;
  }

  function normaliseBase(base) {
    return String(base).trim().replace(/\/+$/, "");
  }

  function apiLabel() {
    return config.apiBase || (window.location.origin + " (same origin)");
  }

  function endpoint(path) {
    return config.apiBase + path;
  }

  function isAbsolute(url) {
    return /^[a-z][a-z0-9+.-]*:/i.test(url) || url.indexOf("//") === 0;
  }

  // Result URLs are absolute (presigned S3) or relative to the API base (`/images/<id>`).
  function resolveUrl(url) {
    if (isAbsolute(url)) return url;
    return config.apiBase + (url.charAt(0) === "/" ? "" : "/") + url;
  }

  function thumbUrl(url) {
    if (!isAbsolute(url) && url.indexOf("/images/") === 0) {
      return resolveUrl(url + (url.indexOf("?") >= 0 ? "&" : "?") + "size=thumb");
    }
    return resolveUrl(url);
  }

  // Keys are stored per API base so a link with ?api=<other server> never receives this API's key.
  function storeKey() {
    return config.apiBase || window.location.origin;
  }

  function readKeys() {
    try {
      var parsed = JSON.parse(window.localStorage.getItem(KEY_STORE) || "{}");
      return parsed && typeof parsed === "object" ? parsed : {};
    } catch (err) {
      return {};
    }
  }

  function writeKeys(keys) {
    try {
      window.localStorage.setItem(KEY_STORE, JSON.stringify(keys));
      return true;
    } catch (err) {
      return false;
    }
  }

  var sessionKey = null;  // used when localStorage is unavailable (private mode, blocked storage)

  function apiKey() {
    if (sessionKey !== null) return sessionKey;
    return readKeys()[storeKey()] || config.configKey || "";
  }

  function authHeaders() {
    var key = apiKey();
    return key ? { "x-api-key": key } : {};
  }

  // ---------- messages ----------

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = false;
  }

  function clearError() {
    el.error.hidden = true;
    el.error.textContent = "";
  }

  function setStatus(message) {
    el.status.textContent = message;
  }

  function setBusy(busy) {
    el.results.setAttribute("aria-busy", busy ? "true" : "false");
    el.dropZone.classList.toggle("is-busy", busy);
  }

  function formatBytes(n) {
    return n >= 1024 * 1024 ? (n / 1024 / 1024).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " KB";
  }

  function tooLargeMessage() {
    return "Image too large (max 6 MB per request). Try a smaller or lower-resolution image.";
  }

  function messageFor(status, body) {
    var server = body && body.error && body.error.message ? body.error.message
      : (body && typeof body.message === "string" ? body.message : "");
    if (status === 401 || status === 403) {
      return "API key required or wrong. Enter the key for this server under Settings." +
        (server && status === 401 ? " (" + server + ")" : "");
    }
    if (status === 413) return tooLargeMessage();
    if (status === 429) return "Too many requests right now. Wait a moment and try again.";
    if (status === 504) return "The search took too long to answer. Try again in a moment.";
    if (server) return server;
    if (status >= 500) return "The search service failed (HTTP " + status + "). Try again later.";
    return "The search failed (HTTP " + status + ").";
  }

  function networkMessage() {
    var crossOrigin = config.apiBase && config.apiBase.indexOf(window.location.origin) !== 0;
    return "Could not reach the search API at " + apiLabel() + ". Check that it is running" +
      (crossOrigin ? " and allows requests from " + window.location.origin + " (CORS)." : ".");
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
    showPreview(blob, name);
    var seq = ++state.seq;
    setBusy(true);
    setStatus("Preparing the image…");
    prepareUpload(blob).then(function (prepared) {
      if (seq !== state.seq) return;
      state.image = prepared.base64;
      el.caption.textContent = name + " · " + formatBytes(blob.size) + (prepared.note ? " · " + prepared.note : "");
      runSearch();
    }, function (err) {
      if (seq !== state.seq) return;
      setBusy(false);
      state.image = null;
      showError(err.message || String(err));
      setStatus("");
    });
  }

  function showPreview(blob, name) {
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(blob);
    el.preview.hidden = false;
    el.preview.alt = "Query image: " + name;
    el.preview.src = state.previewUrl;
    el.placeholder.hidden = true;
    el.placeholderText.textContent = "Drop an image here";
    el.caption.textContent = name;
    el.dropZone.dataset.state = "ready";
    el.fileLabel.textContent = "Choose another image";
  }

  // The browser cannot preview some formats (TIFF) or a broken file; the server still gets to judge it.
  el.preview.addEventListener("error", function () {
    if (!el.preview.getAttribute("src")) return;
    el.preview.hidden = true;
    el.placeholder.hidden = false;
    el.placeholderText.textContent = "No preview for this file";
  });

  // Returns {base64, note}: the original bytes, or a JPEG re-encoding when the image is big.
  function prepareUpload(blob) {
    return decode(blob).then(function (bitmap) {
      var side = bitmap ? Math.max(bitmap.width, bitmap.height) : 0;
      if (!bitmap || (blob.size <= DOWNSCALE_BYTES && side <= MAX_SIDE)) {
        if (bitmap && bitmap.close) bitmap.close();
        // Undecodable here (e.g. TIFF, or not an image at all): the server decides and explains.
        return readBase64(blob).then(function (b64) { return { base64: b64, note: "" }; });
      }
      return downscale(bitmap, Math.min(MAX_SIDE, side)).then(function (result) {
        if (bitmap.close) bitmap.close();
        return result;
      });
    }).then(function (prepared) {
      if (requestBytes(prepared.base64) > MAX_BODY_BYTES) throw new Error(tooLargeMessage());
      return prepared;
    });
  }

  function decode(blob) {
    if (!window.createImageBitmap) return Promise.resolve(null);
    return window.createImageBitmap(blob).catch(function () { return null; });
  }

  function downscale(bitmap, targetSide) {
    var scale = targetSide / Math.max(bitmap.width, bitmap.height);
    var w = Math.max(1, Math.round(bitmap.width * scale));
    var h = Math.max(1, Math.round(bitmap.height * scale));
    var canvas = document.createElement("canvas");
    canvas.width = w;
    canvas.height = h;
    var ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";  // JPEG has no alpha: flatten onto white as the server does
    ctx.fillRect(0, 0, w, h);
    ctx.drawImage(bitmap, 0, 0, w, h);
    return new Promise(function (resolve) {
      canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY);
    }).then(function (jpeg) {
      if (!jpeg) throw new Error("This browser could not re-encode the image; try a smaller file.");
      return readBase64(jpeg).then(function (b64) {
        if (requestBytes(b64) > MAX_BODY_BYTES && targetSide > 512) {
          return downscale(bitmap, Math.round(targetSide * 0.75));
        }
        return { base64: b64, note: "sent as " + w + "×" + h + " JPEG (" + formatBytes(jpeg.size) + ")" };
      });
    });
  }

  function readBase64(blob) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () {
        var url = String(reader.result);
        resolve(url.slice(url.indexOf(",") + 1));
      };
      reader.onerror = function () { reject(new Error("Could not read the file.")); };
      reader.readAsDataURL(blob);
    });
  }

  function requestBytes(base64) {
    return base64.length + 200 + new Blob([el.filter.value]).size;  // JSON envelope, k and filter
  }

  // ---------- searching ----------

  function readK() {
    var raw = el.k.value.trim();
    var k = Number(raw);
    if (!raw || !Number.isInteger(k) || k < K_MIN || k > K_MAX) return null;
    return k;
  }

  function runSearch() {
    clearError();
    if (!state.image) {
      showError("Choose, drop or paste an image first.");
      return;
    }
    var k = readK();
    if (k === null) {
      showError("K must be a whole number from " + K_MIN + " to " + K_MAX + ".");
      el.k.focus();
      return;
    }
    var label = el.filter.value.trim();
    var body = { image: state.image, k: k };
    if (label) body.filter = { label: label };
    var json = JSON.stringify(body);
    if (new Blob([json]).size > MAX_BODY_BYTES) {
      showError(tooLargeMessage());
      return;
    }

    if (state.controller) state.controller.abort();
    var controller = new AbortController();
    state.controller = controller;
    var seq = ++state.seq;
    setBusy(true);
    setStatus("Searching…");
    var started = performance.now();
    var headers = Object.assign({ "content-type": "application/json" }, authHeaders());

    fetch(endpoint("/search"), { method: "POST", headers: headers, body: json, signal: controller.signal })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (payload) {
          return { response: response, payload: payload };
        });
      })
      .then(function (answer) {
        if (seq !== state.seq) return;
        var roundTrip = performance.now() - started;
        setBusy(false);
        var response = answer.response;
        var payload = answer.payload;
        if (!response.ok) {
          failSearch(messageFor(response.status, payload), response.status === 401 || response.status === 403);
          return;
        }
        if (!payload || !Array.isArray(payload.results)) {
          failSearch("The search API answered with something unexpected.", false);
          return;
        }
        state.lastFailedAuth = false;
        render(payload.results, label, k);
        showTiming(payload.took_ms, roundTrip);
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") return;
        if (seq !== state.seq) return;
        setBusy(false);
        failSearch(networkMessage(), false);
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

  function render(results, label, k) {
    var frag = document.createDocumentFragment();
    results.forEach(function (result, i) {
      frag.appendChild(card(result, i + 1));
      if (result.label) state.labels.add(result.label);
    });
    el.results.replaceChildren(frag);
    state.searches += 1;
    el.results.dataset.searches = String(state.searches);
    updateKnownLabels();
    if (!results.length) {
      setStatus(label ? "No indexed image has the label “" + label + "”." : "The collection is empty.");
    } else {
      setStatus(results.length + (results.length === 1 ? " image" : " images") +
        (label ? " labelled “" + label + "”" : "") + (results.length < k ? " (all there are)" : "") +
        ". Click one to search with it.");
    }
  }

  function card(result, rank) {
    var label = result.label || "unlabelled";
    var score = typeof result.score === "number" ? result.score.toFixed(3) : "–";
    var item = document.createElement("li");
    item.className = "card";
    item.dataset.id = result.id;
    item.dataset.label = result.label || "";
    item.dataset.score = String(result.score);

    var button = document.createElement("button");
    button.type = "button";
    button.className = "card-button";
    button.title = "Search with this image";
    button.setAttribute("aria-label",
      "Result " + rank + ": " + label + ", score " + score + ". Search with this image.");

    var frame = document.createElement("span");
    frame.className = "card-image";
    var img = document.createElement("img");
    img.src = thumbUrl(String(result.url));
    img.alt = "Result " + rank + ": " + label;
    img.loading = "lazy";
    img.decoding = "async";
    img.addEventListener("error", function () { frame.classList.add("is-broken"); });
    frame.appendChild(img);

    var rankBadge = document.createElement("span");
    rankBadge.className = "card-rank";
    rankBadge.textContent = "#" + rank;

    var meta = document.createElement("span");
    meta.className = "card-meta";
    var labelEl = document.createElement("span");
    labelEl.className = "card-label";
    labelEl.textContent = label;
    var scoreEl = document.createElement("span");
    scoreEl.className = "card-score";
    scoreEl.textContent = score;
    meta.append(labelEl, scoreEl);

    var bar = document.createElement("span");
    bar.className = "card-bar";
    var fill = document.createElement("span");
    fill.style.width = Math.max(0, Math.min(1, Number(result.score) || 0)) * 100 + "%";
    bar.appendChild(fill);

    button.append(frame, rankBadge, meta, bar);
    button.addEventListener("click", function () { searchFromResult(result, label); });

    var open = document.createElement("a");
    open.className = "card-open";
    open.href = resolveUrl(String(result.url));
    open.target = "_blank";
    open.rel = "noopener";
    open.textContent = "Full image";
    open.setAttribute("aria-label", "Open result " + rank + " (" + label + ") full size in a new tab");

    item.append(button, open);
    return item;
  }

  function updateKnownLabels() {
    var options = Array.from(state.labels).sort().map(function (label) {
      var option = document.createElement("option");
      option.value = label;
      return option;
    });
    el.knownLabels.replaceChildren.apply(el.knownLabels, options);
  }

  function searchFromResult(result, label) {
    var url = resolveUrl(String(result.url));
    // Our own API may need the key; presigned URLs must not get extra headers (they would need CORS preflight).
    var headers = isAbsolute(String(result.url)) ? {} : authHeaders();
    clearError();
    setBusy(true);
    setStatus("Loading " + label + "…");
    fetch(url, { headers: headers })
      .then(function (response) {
        if (!response.ok) throw new Error("Could not load that image (HTTP " + response.status + ").");
        return response.blob();
      })
      .then(function (blob) {
        acceptImage(blob, label + " · " + result.id, false);
        el.figure.scrollIntoView({ block: "nearest", behavior: "smooth" });
      })
      .catch(function (err) {
        setBusy(false);
        setStatus("");
        showError(err instanceof TypeError
          ? "Could not load that image from " + url + " (network or CORS)." : err.message);
      });
  }

  // ---------- input wiring ----------

  el.fileInput.addEventListener("change", function () {
    var file = el.fileInput.files && el.fileInput.files[0];
    if (file) acceptImage(file, file.name, true);
    el.fileInput.value = "";  // choosing the same file again still fires change
  });

  el.figure.addEventListener("click", function () { el.fileInput.click(); });

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
      searchFromResult({ url: uri, id: uri.split("/").pop().split("?")[0] }, "dropped image");
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

  // ---------- settings ----------

  function openSettings(focusKey) {
    el.settings.hidden = false;
    el.settingsToggle.setAttribute("aria-expanded", "true");
    el.apiKey.value = apiKey();
    if (focusKey) el.apiKey.focus();
  }

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
    var keys = readKeys();
    if (key) keys[storeKey()] = key; else delete keys[storeKey()];
    sessionKey = writeKeys(keys) ? null : key;
    setStatus(key ? "API key saved." : "API key cleared.");
    el.settings.hidden = true;
    el.settingsToggle.setAttribute("aria-expanded", "false");
    if (state.image && state.lastFailedAuth) runSearch();
  });

  el.forgetKey.addEventListener("click", function () {
    var keys = readKeys();
    delete keys[storeKey()];
    writeKeys(keys);
    sessionKey = null;
    el.apiKey.value = config.configKey;
    setStatus("API key forgotten for " + apiLabel() + ".");
  });

  // ---------- start ----------

  function loadHealth() {
    el.endpointLabel.textContent = apiLabel();
    el.settingsEndpoint.textContent = apiLabel();
    fetch(endpoint("/healthz"), { headers: authHeaders() })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (health) {
        if (!health || typeof health.count !== "number") return;
        var parts = [health.count.toLocaleString() + " images indexed"];
        if (health.model) parts.push("model " + health.model + (health.dim ? " (" + health.dim + "-d)" : ""));
        parts.push("API " + apiLabel());
        el.info.textContent = parts.join(" · ");
        el.info.dataset.count = String(health.count);
      })
      .catch(function () { /* the footer keeps showing the API address */ });
  }

  if (config.warning) showError(config.warning);
  el.k.max = String(K_MAX);
  document.documentElement.dataset.apiSource = config.source;
  loadHealth();
  document.documentElement.dataset.ready = "true";
})();
