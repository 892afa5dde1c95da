// xsearch web page: no framework, no build step. Talks to /indexes and /search; state lives in the URL.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("search-form");
  const qInput = $("q");
  const routeSelect = $("route");
  const kSelect = $("k");
  const yearInput = $("year");
  const venueInput = $("venue");
  const statusEl = $("status");
  const resultsEl = $("results");
  const heading = $("results-heading");
  const prevBtn = $("prev");
  const nextBtn = $("next");
  const pageInfo = $("page-info");
  const routeAbout = $("route-about");
  const facetsEl = $("facets");

  let info = null;          // the index description from /indexes
  let state = { q: "", route: "", k: 10, offset: 0, year: "", venue: "", fields: [] };
  let last = null;          // the last search response
  let requestId = 0;

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", Boolean(isError));
  }

  function errorMessage(body, response) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => {
        const where = Array.isArray(d.loc) ? d.loc.filter((x) => x !== "query" && x !== "body").join(".") : "";
        return (where ? where + ": " : "") + d.msg;
      }).join("; ");
    }
    return response.status + " " + response.statusText;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) throw new Error(errorMessage(body, response));
    return body;
  }

  // ---- the index description and the route selector --------------------------------------------------------
  async function loadIndex() {
    try {
      const data = await getJSON("/indexes");
      info = data.indexes[0];
    } catch (e) {
      $("index-info").textContent = "Could not read the index description: " + e.message;
      return;
    }
    const langs = Object.entries(info.languages).map(([l, n]) => l + " " + n.toLocaleString("en")).join(", ");
    const tr = info.translation ? "translated into " + info.translation.target_lang : "no stored translation";
    $("index-info").textContent = info.name + " · " + info.doc_count.toLocaleString("en") + " documents (" +
      langs + ") · " + tr;
    routeSelect.textContent = "";
    for (const r of info.routes) {
      const opt = document.createElement("option");
      opt.value = r.name;
      opt.textContent = r.name;
      opt.title = r.about;
      routeSelect.appendChild(opt);
    }
    for (const opt of kSelect.options) opt.disabled = Number(opt.value) > info.max_k;
    qInput.maxLength = info.max_query_chars;
    applyStateToForm();
    describeRoute();
  }

  function describeRoute() {
    if (!info) return;
    const r = info.routes.find((x) => x.name === routeSelect.value);
    routeAbout.textContent = r ? r.name + ": " + r.about : "";
  }

  // ---- URL <-> state <-> form ------------------------------------------------------------------------------
  function readURL() {
    const p = new URLSearchParams(window.location.search);
    state = {
      q: p.get("q") || "",
      route: p.get("route") || "",
      k: Number(p.get("k")) || 10,
      offset: Math.max(0, Number(p.get("offset")) || 0),
      year: p.get("year") || "",
      venue: p.get("venue") || "",
      fields: p.getAll("field"),   // other stored-field filters, "name:value" (facets of other fields)
    };
  }

  function writeURL(push) {
    const p = new URLSearchParams();
    if (state.q) p.set("q", state.q);
    if (state.route) p.set("route", state.route);
    if (state.k !== 10) p.set("k", String(state.k));
    if (state.offset) p.set("offset", String(state.offset));
    if (state.year) p.set("year", state.year);
    if (state.venue) p.set("venue", state.venue);
    for (const f of state.fields) p.append("field", f);
    const url = window.location.pathname + (p.toString() ? "?" + p.toString() : "");
    if (push) window.history.pushState(null, "", url); else window.history.replaceState(null, "", url);
  }

  function applyStateToForm() {
    qInput.value = state.q;
    if (info) routeSelect.value = state.route || info.default_route;
    kSelect.value = String(state.k);
    if (!kSelect.value) kSelect.value = "10";
    yearInput.value = state.year;
    venueInput.value = state.venue;
  }

  function readForm() {
    state.q = qInput.value.trim();
    state.route = routeSelect.value;
    state.k = Number(kSelect.value) || 10;
    state.year = yearInput.value.trim();
    state.venue = venueInput.value.trim();
  }

  // ---- searching -------------------------------------------------------------------------------------------
  async function search(focusResults) {
    if (!state.q) {
      setStatus("Type a query first.", true);
      qInput.focus();
      return;
    }
    const p = new URLSearchParams({ q: state.q, k: String(state.k), offset: String(state.offset) });
    if (state.route) p.set("route", state.route);
    if (state.year) p.set("year", state.year);
    if (state.venue) p.set("venue", state.venue);
    for (const f of state.fields) p.append("field", f);
    const mine = ++requestId;
    resultsEl.setAttribute("aria-busy", "true");
    setStatus("Searching…");
    let data;
    try {
      data = await getJSON("/search?" + p.toString());
    } catch (e) {
      if (mine !== requestId) return;
      resultsEl.setAttribute("aria-busy", "false");
      setStatus("Search failed: " + e.message, true);
      return;
    }
    if (mine !== requestId) return;   // a newer search has started
    last = data;
    render(data);
    resultsEl.setAttribute("aria-busy", "false");
    if (focusResults) heading.focus();
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // title_html and snippet come from the server already HTML-escaped, with <mark> as the only markup
  function markedHTML(tag, className, html) {
    const node = el(tag, className);
    node.innerHTML = html;
    return node;
  }

  function fullText(text, lang) {
    const details = el("details", "full-text");
    details.appendChild(el("summary", null, "Full text"));
    const p = el("p", null, text);
    if (lang) p.lang = lang;
    details.appendChild(p);
    return details;
  }

  function renderHit(hit, data) {
    const li = el("li", "hit");
    const article = el("article");
    const titleId = "hit-title-" + hit.rank;
    article.setAttribute("aria-labelledby", titleId);

    const meta = el("p", "hit-meta");
    const parts = ["#" + hit.rank, "score " + hit.score.toFixed(4)];
    if (hit.fields.year !== undefined) parts.push(String(hit.fields.year));
    if (hit.fields.venue !== undefined) parts.push(String(hit.fields.venue));
    parts.push(hit.id);
    const scores = Object.entries(hit.route_scores);
    if (scores.length) parts.push(scores.map(([r, s]) => r + " " + s.toFixed(3)).join(", "));
    meta.textContent = parts.join(" · ");

    const cols = el("div", "cols");
    const orig = el("section", "col col-original");
    orig.lang = hit.lang || "";
    orig.setAttribute("aria-label", "Original text" + (hit.lang ? " (" + hit.lang + ")" : ""));
    const origLabel = el("p", "col-label", "Original" + (hit.lang ? " · " + hit.lang : ""));
    origLabel.lang = "en";
    orig.appendChild(origLabel);
    const h3 = markedHTML("h3", "hit-title", hit.title_html || "(untitled)");
    h3.id = titleId;
    orig.appendChild(h3);
    orig.appendChild(markedHTML("p", "snippet", hit.snippet));
    if (hit.text) orig.appendChild(fullText(hit.text, hit.lang));

    const trans = el("section", "col col-translation");
    const trLang = hit.translation ? hit.translation.lang : (data.index.translation_lang || "");
    trans.setAttribute("aria-label", "Translation" + (trLang ? " (" + trLang + ")" : ""));
    trans.appendChild(el("p", "col-label", "Translation" + (trLang ? " · " + trLang : "")));
    if (hit.translation) {
      trans.lang = hit.translation.lang;
      trans.appendChild(markedHTML("h3", "hit-title", hit.translation.title_html || "(untitled)"));
      trans.appendChild(markedHTML("p", "snippet", hit.translation.snippet));
      if (hit.translation.text) trans.appendChild(fullText(hit.translation.text, hit.translation.lang));
    } else {
      trans.classList.add("no-translation");
      trans.appendChild(el("p", "none", data.index.translation_lang ? "no translation for this document"
        : "no translation in this index"));
    }
    cols.appendChild(orig);
    cols.appendChild(trans);
    article.appendChild(meta);
    article.appendChild(cols);
    li.appendChild(article);
    return li;
  }

  // ---- facets: counts over the matched candidates, each value a toggle button that filters by it -----------
  const same = (a, b) => String(a).trim().toLowerCase() === String(b).trim().toLowerCase();

  // year and venue have their own form fields (the API's year takes a number); any other field goes as field=
  function formField(field, value) {
    if (field === "year" && /^\d{1,4}$/.test(value)) return "year";
    return field === "venue" && value.length <= 100 ? "venue" : null;
  }

  function facetActive(field, value) {
    const own = formField(field, value);
    if (own) return same(state[own], value);
    return state.fields.some((f) => same(f, field + ":" + value));
  }

  function toggleFacet(field, value) {
    const on = !facetActive(field, value);
    const own = formField(field, value);
    if (own) state[own] = on ? value : "";
    else {
      state.fields = state.fields.filter((f) => !same(f, field + ":" + value));
      if (on) state.fields.push(field + ":" + value);
    }
    state.offset = 0;
    applyStateToForm();
    writeURL(true);
    search(false);
  }

  function renderFacets(data) {
    facetsEl.textContent = "";
    const groups = Object.entries(data.facets || {});
    facetsEl.hidden = groups.length === 0;
    for (const [field, counts] of groups) {
      const group = el("section", "facet");
      const title = el("h3", null, field);
      title.id = "facet-" + field.replace(/[^A-Za-z0-9_-]/g, "_");
      group.setAttribute("aria-labelledby", title.id);
      group.appendChild(title);
      const list = el("ul");
      for (const [value, n] of Object.entries(counts)) {
        const button = el("button", "facet-value", value + " ");
        button.type = "button";
        button.dataset.field = field;
        button.dataset.value = value;
        button.appendChild(el("span", "facet-count", "(" + n + ")"));
        const active = facetActive(field, value);
        button.setAttribute("aria-pressed", active ? "true" : "false");
        button.title = (active ? "Remove the filter " : "Only results with ") + field + " = " + value;
        button.addEventListener("click", () => toggleFacet(field, value));
        const item = el("li");
        item.appendChild(button);
        list.appendChild(item);
      }
      group.appendChild(list);
      facetsEl.appendChild(group);
    }
  }

  function render(data) {
    renderFacets(data);
    resultsEl.textContent = "";
    resultsEl.start = data.offset + 1;
    for (const hit of data.hits) resultsEl.appendChild(renderHit(hit, data));
    const filters = Object.entries(data.filters).map(([f, v]) => f + "=" + v.join("|")).join(", ");
    if (!data.hits.length) {
      setStatus((data.offset ? "No more results" : "No results") + " for “" + data.query + "” (" + data.route +
        (filters ? ", " + filters : "") + ").");
      pageInfo.textContent = "";
    } else {
      const first = data.offset + 1;
      const lastRank = data.offset + data.hits.length;
      setStatus("Results " + first + "–" + lastRank + " for “" + data.query + "” by " + data.route +
        (filters ? " (" + filters + ")" : "") + " in " + Math.round(data.took_ms) + " ms.");
      pageInfo.textContent = "Results " + first + "–" + lastRank;
    }
    prevBtn.disabled = data.prev_offset === null || data.prev_offset === undefined;
    nextBtn.disabled = data.next_offset === null || data.next_offset === undefined;
  }

  // ---- events ----------------------------------------------------------------------------------------------
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    readForm();
    state.offset = 0;
    writeURL(true);
    search(false);
  });
  routeSelect.addEventListener("change", describeRoute);
  prevBtn.addEventListener("click", () => {
    if (!last || last.prev_offset === null) return;
    state.offset = last.prev_offset;
    writeURL(true);
    search(true);
  });
  nextBtn.addEventListener("click", () => {
    if (!last || last.next_offset === null) return;
    state.offset = last.next_offset;
    writeURL(true);
    search(true);
  });
  window.addEventListener("popstate", () => {
    readURL();
    applyStateToForm();
    if (state.q) search(false);
  });

  readURL();
  loadIndex().then(() => { if (state.q) search(false); });
})();
