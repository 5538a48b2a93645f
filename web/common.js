// lookalike web page, shared part: configuration, the API key, requests to the API, error messages and
// the image card used by every grid (collection, results, duplicates). Loaded before browse.js,
// duplicates.js and app.js, which reach it through window.Lookalike. Plain browser JavaScript.
(function () {
  "use strict";

  var L = window.Lookalike = window.Lookalike || {};
  var KEY_STORE = "lookalike.apiKeys";

  L.$ = function (id) { return document.getElementById(id); };

  // An error line (role=alert) that each view owns: show a message in it, or clear it.
  L.errorLine = function (element) {
    return {
      show: function (message) { element.textContent = message; element.hidden = false; },
      clear: function () { element.hidden = true; element.textContent = ""; }
    };
  };

  // ---------- configuration ----------

  function normaliseBase(base) {
    return String(base).trim().replace(/\/+$/, "");
  }

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

  var config = L.config = resolveConfig(window.LOOKALIKE_CONFIG || {}, window.location);

  L.apiLabel = function () {
    return config.apiBase || (window.location.origin + " (same origin)");
  };

  L.endpoint = function (path, params) {
    var query = "";
    if (params) {
      var search = new URLSearchParams();
      Object.keys(params).forEach(function (name) {
        var value = params[name];
        if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
      });
      query = search.toString() ? "?" + search.toString() : "";
    }
    return config.apiBase + path + query;
  };

  var isAbsolute = L.isAbsolute = function (url) {
    return /^[a-z][a-z0-9+.-]*:/i.test(url) || url.indexOf("//") === 0;
  };

  // Image URLs are absolute (presigned S3) or relative to the API base (`/images/<id>`).
  var resolveUrl = L.resolveUrl = function (url) {
    url = String(url);
    if (isAbsolute(url)) return url;
    return config.apiBase + (url.charAt(0) === "/" ? "" : "/") + url;
  };

  L.thumbUrl = function (url) {
    url = String(url);
    if (!isAbsolute(url) && url.indexOf("/images/") === 0) {
      return resolveUrl(url + (url.indexOf("?") >= 0 ? "&" : "?") + "size=thumb");
    }
    return resolveUrl(url);
  };

  // The id of an image URL served by this API (…/images/<id>[?sig=…]), or null for any other URL.
  L.idFromImageUrl = function (url) {
    var prefix;
    try {
      prefix = new URL(L.endpoint("/images/"), window.location.href).href;
      url = new URL(url, window.location.href).href;
    } catch (err) {
      return null;
    }
    if (url.indexOf(prefix) !== 0) return null;
    var id = url.slice(prefix.length).split(/[?#]/)[0];
    return id && id.indexOf("/") < 0 ? decodeURIComponent(id) : null;
  };

  // ---------- the API key (stored per API base, so ?api=<other server> never receives this one) ----------

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

  L.apiKey = function () {
    if (sessionKey !== null) return sessionKey;
    return readKeys()[storeKey()] || config.configKey || "";
  };

  L.saveKey = function (key) {
    var keys = readKeys();
    if (key) keys[storeKey()] = key; else delete keys[storeKey()];
    sessionKey = writeKeys(keys) ? null : key;
  };

  L.forgetKey = function () {
    var keys = readKeys();
    delete keys[storeKey()];
    writeKeys(keys);
    sessionKey = null;
  };

  L.authHeaders = function () {
    var key = L.apiKey();
    return key ? { "x-api-key": key } : {};
  };

  // ---------- requests ----------

  // Resolves to {response, payload} (payload null when the body is not JSON); rejects with a TypeError
  // when the API cannot be reached (network, CORS) and an AbortError when `signal` aborts.
  L.request = function (method, path, options) {
    options = options || {};
    var headers = L.authHeaders();
    var init = { method: method, headers: headers, signal: options.signal };
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    }
    return fetch(L.endpoint(path, options.params), init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (payload) {
        return { response: response, payload: payload };
      });
    });
  };

  // Called when the API answers 401/403: app.js opens the settings panel there.
  L.onAuthFailure = function () {};

  L.isAuthStatus = function (status) {
    return status === 401 || status === 403;
  };

  // ---------- messages ----------

  L.tooLargeMessage = function () {
    return "Image too large (max 6 MB per request). Try a smaller or lower-resolution image.";
  };

  L.messageFor = function (status, body, what) {
    var server = body && body.error && body.error.message ? body.error.message
      : (body && typeof body.message === "string" ? body.message : "");
    what = what || "The search";
    if (status === 401 || status === 403) {
      return "API key required or wrong. Enter the key for this server under Settings." +
        (server && status === 401 ? " (" + server + ")" : "");
    }
    if (status === 413) return L.tooLargeMessage();
    if (status === 429) return "Too many requests right now. Wait a moment and try again.";
    if (status === 504) return what + " took too long to answer. Try again in a moment.";
    if (server) return server;
    if (status >= 500) return what + " failed on the server (HTTP " + status + "). Try again later.";
    return what + " failed (HTTP " + status + ").";
  };

  // A 404 for a whole route (an older API, or a gateway without it), rather than for a missing entry.
  L.missingRouteMessage = function (status, body, path, what) {
    var code = body && body.error && body.error.code;
    // API Gateway answers a route it does not have with 403 {"message": "Missing Authentication Token"}.
    var gatewayMissing = status === 403 && body && body.message === "Missing Authentication Token";
    if (gatewayMissing || (status === 404 && (!code || /^not found$/i.test(String(body.error.message || ""))))) {
      return "This API (" + L.apiLabel() + ") does not offer " + what + " (no " + path + ").";
    }
    return null;
  };

  L.networkMessage = function () {
    var crossOrigin = config.apiBase && config.apiBase.indexOf(window.location.origin) !== 0;
    return "Could not reach the search API at " + L.apiLabel() + ". Check that it is running" +
      (crossOrigin ? " and allows requests from " + window.location.origin + " (CORS)." : ".");
  };

  L.plural = function (n, one, many) {
    return n.toLocaleString() + " " + (n === 1 ? one : (many || one + "s"));
  };

  L.formatBytes = function (n) {
    return n >= 1024 * 1024 ? (n / 1024 / 1024).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " KB";
  };

  L.shortId = function (id) {
    id = String(id || "");
    return id.length > 10 ? id.slice(0, 8) + "…" : id;
  };

  L.formatScore = function (score) {
    return typeof score === "number" && isFinite(score) ? score.toFixed(3) : "–";
  };

  // ---------- the known labels (for the search form's datalist) ----------

  var knownLabels = new Map();  // label -> count (null when only seen in results)

  L.addKnownLabels = function (entries) {
    entries.forEach(function (entry) {
      if (!entry.label) return;
      if (typeof entry.count === "number" || !knownLabels.has(entry.label)) {
        knownLabels.set(entry.label, typeof entry.count === "number" ? entry.count : null);
      }
    });
    var list = L.$("known-labels");
    if (!list) return;
    var options = Array.from(knownLabels.keys()).sort().map(function (label) {
      var option = document.createElement("option");
      option.value = label;
      var count = knownLabels.get(label);
      if (count !== null) option.label = label + " (" + count.toLocaleString() + ")";
      return option;
    });
    list.replaceChildren.apply(list, options);
  };

  // ---------- the image card ----------

  function span(className, text) {
    var node = document.createElement("span");
    node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  L.span = span;

  // One image of a grid: a button (the thumbnail; activating it runs "more like this") and, with
  // options.fullLink, a link to the full image. options: name (accessible name of the button),
  // alt, rank, score, title (shown instead of the label) and tooltip, meta (extra nodes under the
  // button), onActivate, className.
  L.card = function (entry, options) {
    var label = entry.label || "unlabelled";
    var item = document.createElement("li");
    item.className = "card" + (options.className ? " " + options.className : "");
    item.dataset.id = entry.id;
    item.dataset.label = entry.label || "";
    if (options.score !== undefined) item.dataset.score = String(options.score);

    var button = document.createElement("button");
    button.type = "button";
    button.className = "card-button";
    button.title = "Find more like this";
    button.setAttribute("aria-label", options.name);

    var frame = span("card-image");
    var img = document.createElement("img");
    img.src = L.thumbUrl(entry.url);
    img.alt = options.alt || label;
    img.loading = "lazy";
    img.decoding = "async";
    img.addEventListener("error", function () { frame.classList.add("is-broken"); });
    frame.appendChild(img);
    button.appendChild(frame);

    if (options.rank !== undefined) button.appendChild(span("card-rank", "#" + options.rank));

    var meta = span("card-meta");
    var title = span("card-label", options.title || label);
    if (options.tooltip) title.title = options.tooltip;
    meta.appendChild(title);
    if (options.score !== undefined) meta.appendChild(span("card-score", L.formatScore(options.score)));
    button.appendChild(meta);

    if (options.score !== undefined) {
      var bar = span("card-bar");
      var fill = document.createElement("span");
      fill.style.width = Math.max(0, Math.min(1, Number(options.score) || 0)) * 100 + "%";
      bar.appendChild(fill);
      button.appendChild(bar);
    }
    button.addEventListener("click", function () { options.onActivate(entry, button); });
    item.appendChild(button);

    (options.meta || []).forEach(function (node) { item.appendChild(node); });

    if (options.fullLink) {
      var open = document.createElement("a");
      open.className = "card-open";
      open.href = resolveUrl(entry.url);
      open.target = "_blank";
      open.rel = "noopener";
      open.textContent = "Full image";
      open.setAttribute("aria-label", "Open " + options.fullLink + " full size in a new tab");
      item.appendChild(open);
    }
    return item;
  };
})();
