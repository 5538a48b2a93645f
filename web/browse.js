// lookalike web page, the collection: a paged grid of thumbnails (GET /images) with a label picker
// (GET /labels), shown while no query image is chosen. Clicking a tile runs "more like this"
// (app.js: Lookalike.moreLikeThis). Plain browser JavaScript; needs common.js.
(function () {
  "use strict";

  var L = window.Lookalike;
  var $ = L.$;
  var PAGE_SIZE = 48;

  var el = {
    root: $("browse"), picker: $("browse-label"), grid: $("browse-grid"), more: $("browse-more"),
    count: $("browse-count"), error: $("browse-error")
  };
  var state = {
    label: "",          // the label the grid is filtered by ("" = all)
    next: null,         // `after` for the next page, null when the last page is shown
    shown: 0,
    total: null,        // entries matching the label filter (from the last page)
    controller: null,
    seq: 0,
    loaded: false,      // the first page arrived
    failed: false,      // the last request failed (retried when the API key changes)
    labelsLoaded: false,
    allCount: null      // entries in the whole collection (from /labels)
  };

  var errorLine = L.errorLine(el.error);
  var showError = errorLine.show;
  var clearError = errorLine.clear;

  function setBusy(busy) {
    el.grid.setAttribute("aria-busy", busy ? "true" : "false");
    el.more.disabled = busy;
    el.more.textContent = busy && state.shown ? "Loading…" : "Load more";
  }

  function failure(answer, path, what) {
    var status = answer.response.status;
    var missing = L.missingRouteMessage(status, answer.payload, path, what);
    if (missing) return { message: missing, auth: false, missing: true };
    var auth = L.isAuthStatus(status);
    return { message: L.messageFor(status, answer.payload, "Loading " + what), auth: auth, missing: false };
  }

  // ---------- labels ----------

  function loadLabels() {
    return L.request("GET", "/labels").then(function (answer) {
      if (!answer.response.ok || !answer.payload || !Array.isArray(answer.payload.labels)) return;
      var labels = answer.payload.labels.filter(function (entry) { return entry && entry.label; });
      state.labelsLoaded = true;
      state.allCount = typeof answer.payload.total === "number" ? answer.payload.total : null;
      renderPicker(labels);
      L.addKnownLabels(labels);
    }).catch(function () { /* the grid's own request reports what is wrong */ });
  }

  function renderPicker(labels) {
    var all = document.createElement("option");
    all.value = "";
    all.textContent = "All labels" + (state.allCount !== null ? " (" + state.allCount.toLocaleString() + ")" : "");
    var options = [all].concat(labels.map(function (entry) {
      var option = document.createElement("option");
      option.value = entry.label;
      option.textContent = entry.label + (typeof entry.count === "number" ? " (" + entry.count.toLocaleString() + ")" : "");
      return option;
    }));
    var known = labels.some(function (entry) { return entry.label === state.label; });
    if (state.label && !known) {  // keep a label chosen before the list changed
      var kept = document.createElement("option");
      kept.value = state.label;
      kept.textContent = state.label;
      options.push(kept);
    }
    el.picker.replaceChildren.apply(el.picker, options);
    el.picker.value = state.label;
  }

  // ---------- the grid ----------

  function loadPage(reset) {
    if (state.controller) state.controller.abort();
    var controller = new AbortController();
    state.controller = controller;
    var seq = ++state.seq;
    var params = { limit: PAGE_SIZE, label: state.label, after: reset ? null : state.next };
    clearError();
    setBusy(true);
    if (reset) el.count.textContent = "Loading the collection…";

    return L.request("GET", "/images", { params: params, signal: controller.signal }).then(function (answer) {
      if (seq !== state.seq) return;
      setBusy(false);
      var payload = answer.payload;
      if (!answer.response.ok) {
        var failed = failure(answer, "/images", "browsing");
        if (failed.missing) {  // an API without browsing (an older one): a note, not an error
          fail("", reset);
          el.picker.closest(".field").hidden = true;
          el.count.textContent = failed.message + " Choose, drop or paste an image to search.";
          return;
        }
        fail(failed.message, reset);
        if (failed.auth) L.onAuthFailure();
        return;
      }
      if (!payload || !Array.isArray(payload.images)) {
        fail("The API answered GET /images with something unexpected.", reset);
        return;
      }
      state.failed = false;
      state.loaded = true;
      state.next = payload.next || null;
      if (typeof payload.total === "number") state.total = payload.total;
      render(payload.images, reset);
    }).catch(function (err) {
      if (err && err.name === "AbortError") return;
      if (seq !== state.seq) return;
      setBusy(false);
      fail(L.networkMessage(), reset);
    });
  }

  function fail(message, reset) {
    state.failed = true;
    if (message) showError(message);
    if (reset) {
      state.shown = 0;
      state.next = null;
      el.grid.replaceChildren();
      el.more.hidden = true;
    }
    el.count.textContent = "";
  }

  function tile(entry, position) {
    var label = entry.label || "unlabelled";
    return L.card(entry, {
      className: "browse-card",
      alt: label,
      name: label + ", image " + position + (state.total ? " of " + state.total.toLocaleString() : "") +
        ". Find more like this.",
      onActivate: function (item) { L.moreLikeThis(item, { from: "collection" }); }
    });
  }

  function render(images, reset) {
    var frag = document.createDocumentFragment();
    var start = reset ? 0 : state.shown;
    images.forEach(function (entry, i) { frag.appendChild(tile(entry, start + i + 1)); });
    var firstNew = frag.firstElementChild;
    if (reset) {
      el.grid.replaceChildren(frag);
      state.shown = images.length;
    } else {
      el.grid.appendChild(frag);
      state.shown += images.length;
    }
    el.grid.dataset.pages = String(reset ? 1 : Number(el.grid.dataset.pages || 0) + 1);
    el.more.hidden = !state.next;
    updateCount();
    L.addKnownLabels(images);
    return firstNew;
  }

  function updateCount() {
    var total = state.total !== null ? state.total : state.shown;
    var which = state.label ? " labelled “" + state.label + "”" : "";
    if (!state.shown) {
      el.count.textContent = state.label ? "No images labelled “" + state.label + "”."
        : "The collection is empty. Index a folder with `lookalike index DIR`.";
    } else if (state.next) {
      el.count.textContent = "Showing " + state.shown.toLocaleString() + " of " + L.plural(total, "image") + which + ".";
    } else {
      el.count.textContent = (state.shown === 1 ? "The only image" : "All " + L.plural(state.shown, "image")) +
        which + ".";
    }
  }

  el.picker.addEventListener("change", function () {
    state.label = el.picker.value;
    state.total = null;
    loadPage(true);
  });

  el.more.addEventListener("click", function () {
    var before = state.shown;
    loadPage(false).then(function () {
      // Keyboard users continue at the first new image instead of tabbing back up the grid.
      var first = el.grid.children[before];
      if (first && state.shown > before) first.querySelector(".card-button").focus();
    });
  });

  L.browse = {
    start: function () {
      loadLabels();
      loadPage(true);
    },
    // After the API key changed: try again what failed.
    retry: function () {
      if (!state.labelsLoaded) loadLabels();
      if (state.failed || !state.loaded) loadPage(true);
    },
    // The tile of an id, to give focus back to it on returning from results.
    tileFor: function (id) {
      return Array.prototype.find.call(el.grid.children, function (item) { return item.dataset.id === id; }) || null;
    }
  };
})();
