// lookalike web page, the Duplicates view: groups of exact copies and near duplicates
// (GET /duplicates), largest first, with a similarity threshold and paging. Clicking an image runs
// "more like this" in the Search view (app.js: Lookalike.moreLikeThis). Needs common.js.
(function () {
  "use strict";

  var L = window.Lookalike;
  var $ = L.$;
  var PAGE_SIZE = 20;
  var DEBOUNCE_MS = 300;

  var el = {
    form: $("dup-form"), threshold: $("dup-threshold"), value: $("dup-threshold-value"),
    groups: $("dup-groups"), more: $("dup-more"), status: $("dup-status"), error: $("dup-error")
  };
  var state = {
    threshold: null,    // null until the user moves the control: the server's default applies
    next: null,
    groups: 0,
    images: 0,
    exact: 0,
    controller: null,
    seq: 0,
    loaded: false,
    failed: false,
    timer: null
  };

  var errorLine = L.errorLine(el.error);
  var showError = errorLine.show;
  var clearError = errorLine.clear;

  function setBusy(busy) {
    el.groups.setAttribute("aria-busy", busy ? "true" : "false");
    el.more.disabled = busy;
    el.more.textContent = busy && state.groups ? "Loading…" : "Load more groups";
  }

  function thresholdText(value) {
    return Number(value).toFixed(2);
  }

  function load(reset) {
    if (state.controller) state.controller.abort();
    var controller = new AbortController();
    state.controller = controller;
    var seq = ++state.seq;
    clearError();
    setBusy(true);
    if (reset) el.status.textContent = "Looking for duplicates…";
    var params = { threshold: state.threshold !== null ? thresholdText(state.threshold) : null, limit: PAGE_SIZE,
                   after: reset ? null : state.next };

    return L.request("GET", "/duplicates", { params: params, signal: controller.signal }).then(function (answer) {
      if (seq !== state.seq) return;
      setBusy(false);
      var status = answer.response.status;
      var payload = answer.payload;
      if (!answer.response.ok) {
        var missing = L.missingRouteMessage(status, payload, "/duplicates", "finding duplicates");
        if (missing) {  // an API without it (an older one): a note, not an error
          fail("", reset);
          el.status.textContent = missing;
          return;
        }
        fail(L.messageFor(status, payload, "Finding duplicates"), reset);
        if (L.isAuthStatus(status)) L.onAuthFailure();
        return;
      }
      if (!payload || !Array.isArray(payload.groups)) {
        fail("The API answered GET /duplicates with something unexpected.", reset);
        return;
      }
      state.failed = false;
      state.loaded = true;
      state.next = payload.next || null;
      if (typeof payload.threshold === "number") {
        if (state.threshold === null) el.threshold.value = String(payload.threshold);
        el.value.textContent = thresholdText(payload.threshold);
      }
      render(payload.groups, reset, payload.threshold, typeof payload.total === "number" ? payload.total : null);
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
    el.status.textContent = "";
    if (reset) {
      state.groups = state.images = state.exact = 0;
      state.next = null;
      el.groups.replaceChildren();
      el.more.hidden = true;
    }
  }

  function member(entry, index, group) {
    var label = entry.label || "unlabelled";
    var name = entry.path ? String(entry.path).split(/[\\/]/).pop() : L.shortId(entry.id);
    // In an exact group every file has the same content (1.000): none of them is "the original".
    var exact = group.kind === "exact";
    var isReference = index === 0 && !exact;
    var scoreText = isReference ? "reference" : L.formatScore(entry.score);

    var meta = L.span("dup-member-meta");
    var score = L.span("dup-score" + (isReference ? " is-reference" : ""), scoreText);
    score.title = exact ? "Same file content" : isReference ? "The image the scores compare with"
      : "Similarity to the group’s first image";
    meta.append(L.span("dup-label", label), score);

    var card = L.card(entry, {
      className: "dup-member",
      title: name,
      tooltip: entry.path ? String(entry.path) : String(entry.id),
      alt: label + ": " + name,
      name: name + " (" + label + ")" + (exact ? ", identical content" : isReference ? ", the group’s first image"
        : ", similarity " + scoreText + " to the first") +
        ". Find more like this.",
      meta: [meta],
      fullLink: name,
      onActivate: function (item) { L.moreLikeThis(item, { from: "duplicates" }); }
    });
    card.dataset.score = String(entry.score);
    card.dataset.path = String(entry.path || "");
    return card;
  }

  function groupItem(group, number) {
    var members = Array.isArray(group.members) ? group.members : [];
    var size = typeof group.size === "number" ? group.size : members.length;
    var exact = group.kind === "exact";
    var item = document.createElement("li");
    item.className = "dup-group";
    item.dataset.id = String(group.id);
    item.dataset.kind = String(group.kind);
    item.dataset.size = String(size);

    var header = document.createElement("div");
    header.className = "dup-group-header";
    var title = document.createElement("h3");
    title.className = "dup-group-title";
    title.id = "dup-group-" + number;
    title.append(L.span("dup-kind " + (exact ? "is-exact" : "is-near"), exact ? "Exact copies" : "Near duplicates"),
      document.createTextNode(" " + L.plural(size, "image")));
    header.appendChild(title);
    var scores = members.slice(1).map(function (m) { return m.score; }).filter(function (s) { return typeof s === "number"; });
    if (!exact && scores.length) {
      header.appendChild(L.span("dup-group-range", "lowest similarity " + L.formatScore(Math.min.apply(null, scores))));
    }

    var list = document.createElement("ol");
    list.className = "dup-members";
    list.setAttribute("aria-labelledby", title.id);
    members.forEach(function (entry, i) { list.appendChild(member(entry, i, group)); });
    if (members.length < size) {
      var rest = document.createElement("li");
      rest.className = "dup-rest";
      rest.textContent = "+ " + L.plural(size - members.length, "more image");
      list.appendChild(rest);
    }
    item.append(header, list);
    return item;
  }

  // total: the number of groups at this threshold, when the API says it.
  function render(groups, reset, threshold, total) {
    var frag = document.createDocumentFragment();
    if (reset) state.groups = state.images = state.exact = 0;
    groups.forEach(function (group, i) {
      frag.appendChild(groupItem(group, state.groups + i + 1));
      state.images += typeof group.size === "number" ? group.size : (group.members || []).length;
      if (group.kind === "exact") state.exact += 1;
    });
    if (reset) el.groups.replaceChildren(frag); else el.groups.appendChild(frag);
    state.groups += groups.length;
    el.more.hidden = !state.next;
    var at = typeof threshold === "number" ? " at similarity ≥ " + thresholdText(threshold) : "";
    if (!state.groups) {
      el.status.textContent = "No duplicates" + at + "." +
        (threshold > Number(el.threshold.min) ? " Lower the threshold to find looser matches." : "");
    } else {
      var shown = state.next && total ? "The first " + state.groups.toLocaleString() + " of " + L.plural(total, "group")
        : (state.next ? "The first " : "") + L.plural(state.groups, "group");
      el.status.textContent = shown + at + " (" +
        state.exact.toLocaleString() + " exact, " + (state.groups - state.exact).toLocaleString() + " near; " +
        L.plural(state.images, "image") + ")" + (state.next ? ". More below." : ".");
    }
  }

  function scheduleReload(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(function () { load(true); }, delay);
  }

  el.threshold.addEventListener("input", function () {
    state.threshold = Number(el.threshold.value);
    el.value.textContent = thresholdText(state.threshold);
    scheduleReload(DEBOUNCE_MS);
  });
  el.form.addEventListener("submit", function (event) {
    event.preventDefault();
    scheduleReload(0);
  });

  el.more.addEventListener("click", function () {
    var before = el.groups.children.length;
    load(false).then(function () {
      var first = el.groups.children[before];
      var button = first && first.querySelector(".card-button");
      if (button) button.focus();
    });
  });

  L.duplicates = {
    show: function () {
      if (!state.seq || state.failed) load(true);  // first visit, or try again after a failure
    },
    retry: function () {
      if (state.failed) load(true);
    }
  };
})();
