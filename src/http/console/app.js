// Quarry's web console: collections, search, ask, history and a dashboard,
// over the HTTP API (docs/http.md) with the key from session storage sent
// as a bearer header. No dependencies, no build step.
"use strict";

const KEY = "quarry.key";
// Script errors are kept on the page (data-errors on <body>) so that a
// browser test fails when the page breaks, not only when the server does.
window.addEventListener("error", (e) => { document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + "\n"; });
window.addEventListener("unhandledrejection", (e) => { document.body.dataset.errors = (document.body.dataset.errors || "") + String(e.reason) + "\n"; });
let me = null; // {name, role, collections}

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
};

function headers(extra = {}) {
  const h = { ...extra };
  const key = sessionStorage.getItem(KEY);
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function api(method, path, body) {
  const opts = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) opts.body = JSON.stringify(body);
  const res = await fetch(path, opts);
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : {}; } catch (_) { json = { error: { code: "HTTP " + res.status, message: text } }; }
  if (!res.ok) {
    const e = json.error || {};
    throw new Error(`${e.code || res.status}: ${e.message || text}`);
  }
  return json;
}

const isAdmin = () => me && me.role === "admin";
const show = (msg) => el("p", { class: "error" }, msg);
const fmtTime = (ms) => (ms ? new Date(Number(ms)).toLocaleString() : "");
const num = (x, d = 3) => (x === undefined || x === null ? "" : Number(x).toFixed(d));

// ---- sign in -------------------------------------------------------------

async function signIn(key) {
  if (key !== undefined) sessionStorage.setItem(KEY, key);
  me = await api("GET", "/v1/session");
  $("#whoami").textContent = (me.name || "anonymous") + " · " + me.role;
  $("#login-page").hidden = true;
  $("#nav").hidden = false;
  $("#logout").hidden = false;
  $("#page").hidden = false;
  if (!location.hash || location.hash === "#/") location.hash = "#/collections";
  route();
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try { await signIn($("#key").value.trim()); } catch (e) {
    sessionStorage.removeItem(KEY);
    $("#login-error").textContent = e.message;
  }
});
$("#logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.hash = ""; location.reload(); });

// ---- router --------------------------------------------------------------

const pages = {};
async function route() {
  if (!me) return;
  const [, name, arg] = (location.hash || "#/collections").split("/");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + name);
  const page = $("#page");
  page.replaceChildren();
  try { await (pages[name] || pages.collections)(page, arg && decodeURIComponent(arg)); } catch (e) { page.append(show(e.message)); }
}
window.addEventListener("hashchange", route);

async function collectionNames() {
  const list = await api("GET", "/v1/collections");
  return (list.collections || []).map((c) => c.name);
}

function collectionSelect(id, names) {
  const saved = sessionStorage.getItem("quarry.collection");
  return el("select", { id }, names.map((n) => el("option", { value: n, selected: n === saved }, n)));
}

// ---- collections ---------------------------------------------------------

pages.collections = async (page) => {
  page.append(el("h1", {}, "Collections"));
  const list = await api("GET", "/v1/collections");
  const rows = (list.collections || []).map((c) =>
    el("tr", { "data-name": c.name },
      el("td", {}, c.name),
      el("td", { class: "num" }, c.documentCount || "0"),
      el("td", { class: "num" }, c.chunkCount || "0"),
      el("td", { class: "num" }, c.denseIndexedChunks || "0"),
      el("td", { class: "num" }, c.keywordIndexedChunks || "0"),
      el("td", {}, (c.settings && c.settings.language) || ""),
      el("td", {}, (c.settings && c.settings.quantization) || ""),
      el("td", {}, fmtTime(c.createdAtMs)),
      el("td", {}, isAdmin() ? el("button", { class: "delete", "data-name": c.name, onclick: () => askDelete(page, c.name) }, "Delete") : "")));
  page.append(el("table", { id: "collections" },
    el("tr", {}, ["Name", "Documents", "Chunks", "Dense indexed", "Keyword indexed", "Language", "Vectors", "Created", ""].map((h) => el("th", {}, h))),
    rows));
  if (!rows.length) page.append(el("p", { class: "muted" }, "No collections yet."));
  if (isAdmin()) {
    const name = el("input", { id: "new-name", placeholder: "new collection name" });
    const status = el("span", { id: "create-status" });
    page.append(el("form", { class: "row", id: "create-form", onsubmit: async (ev) => {
      ev.preventDefault();
      try { await api("POST", "/v1/collections", { name: name.value.trim() }); route(); } catch (e) { status.textContent = e.message; status.className = "error"; }
    } }, name, el("button", { id: "create", type: "submit" }, "Create"), status));
  }
};

function askDelete(page, name) {
  const old = $("#confirm", page);
  if (old) old.remove();
  const typed = el("input", { id: "confirm-name", placeholder: name });
  const status = el("span");
  page.append(el("div", { class: "row", id: "confirm" },
    `Delete ${name} and all its documents? Type its name to confirm:`, typed,
    el("button", { id: "confirm-delete", onclick: async () => {
      if (typed.value !== name) { status.textContent = "the name does not match"; status.className = "error"; return; }
      try { await api("DELETE", "/v1/collections/" + encodeURIComponent(name)); route(); } catch (e) { status.textContent = e.message; status.className = "error"; }
    } }, "Delete for good"),
    el("button", { onclick: () => $("#confirm", page).remove() }, "Cancel"), status));
}

// ---- search --------------------------------------------------------------

pages.search = async (page) => {
  page.append(el("h1", {}, "Search"));
  const names = await collectionNames();
  const coll = collectionSelect("search-collection", names);
  const query = el("input", { id: "search-query", placeholder: "query", size: 50 });
  const mode = el("select", { id: "search-mode" }, ["HYBRID", "DENSE", "KEYWORD"].map((m) => el("option", { value: "SEARCH_MODE_" + m }, m.toLowerCase())));
  const topK = el("input", { id: "search-top-k", type: "number", value: 10, min: 1, max: 100, size: 4 });
  const out = el("div", { id: "search-results" });
  page.append(el("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("quarry.collection", coll.value);
    out.replaceChildren(el("p", { class: "muted" }, "searching…"));
    try {
      const r = await api("POST", `/v1/collections/${encodeURIComponent(coll.value)}/search`, { query: query.value, mode: mode.value, topK: Number(topK.value) });
      out.replaceChildren(el("p", { class: "muted" }, `${(r.hits || []).length} hits in ${num(r.tookMs, 1)} ms`),
        el("table", {}, el("tr", {}, ["#", "Document", "Fused", "Dense (rank, score)", "Keyword (rank, score)", "Text"].map((h) => el("th", {}, h))),
          (r.hits || []).map((h, i) => el("tr", { class: "hit" },
            el("td", { class: "num" }, i + 1),
            el("td", {}, h.documentId, h.title ? el("div", { class: "muted" }, h.title) : ""),
            el("td", { class: "num fused" }, num(h.score || 0, 4)),
            el("td", { class: "num dense" }, h.denseRank ? `${h.denseRank} · ${num(h.denseScore, 4)}` : "–"),
            el("td", { class: "num keyword" }, h.keywordRank ? `${h.keywordRank} · ${num(h.keywordScore, 3)}` : "–"),
            el("td", {}, h.text)))));
    } catch (e) { out.replaceChildren(show(e.message)); }
  } }, coll, query, mode, "top", topK, el("button", { id: "search-go", type: "submit" }, "Search")), out);
};

// ---- ask -----------------------------------------------------------------

async function* sse(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield [event, JSON.parse(data)];
    }
  }
}

pages.ask = async (page) => {
  page.append(el("h1", {}, "Ask"));
  const names = await collectionNames();
  const coll = collectionSelect("ask-collection", names);
  const question = el("input", { id: "ask-question", placeholder: "question", size: 60 });
  const mode = el("select", { id: "ask-mode" }, ["GROUNDED", "EXTRACTIVE", "GENERATIVE"].map((m) => el("option", { value: "ANSWER_MODE_" + m }, m.toLowerCase())));
  const answer = el("div", { id: "answer" });
  const status = el("p", { id: "ask-status", class: "muted" });
  const passage = el("div", { id: "passage", hidden: true });
  const cites = el("ol", { id: "citations" });
  let given = [];
  const open = (n) => {
    const c = given.find((c) => c.number === n);
    if (!c) return;
    passage.hidden = false;
    passage.replaceChildren(el("strong", {}, `[${n}] ${c.documentId}${c.title ? " — " + c.title : ""}`), "\n", c.snippet || "");
  };
  page.append(el("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("quarry.collection", coll.value);
    answer.replaceChildren(); cites.replaceChildren(); passage.hidden = true; status.textContent = "asking…"; given = [];
    const res = await fetch(`/v1/collections/${encodeURIComponent(coll.value)}/ask`, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ question: question.value, answerMode: mode.value }) });
    if (!res.ok) { const t = await res.text(); status.textContent = ""; answer.append(show(t)); return; }
    let current = null;
    for await (const [event, data] of sse(res)) {
      if (event === "error") { answer.append(show(data.error.message)); break; }
      if (data.citations) {
        given = data.citations.citations || [];
        for (const c of given) cites.append(el("li", { value: c.number, "data-number": c.number },
          el("a", { class: "cite-open", onclick: () => open(c.number) }, c.documentId), " ", el("span", { class: "muted" }, (c.snippet || "").slice(0, 140))));
      } else if (data.delta) {
        if (!current) { current = el("span", { class: "sentence" }); answer.append(current); }
        // Citation markers [n] in the text become links to their passage.
        const parts = (data.delta.text || "").split(/\[(\d+)\]/);
        parts.forEach((part, i) => {
          if (i % 2 === 0) current.append(part);
          else { const n = Number(part); current.append(el("a", { class: "cite", "data-number": n, onclick: () => open(n) }, `[${n}]`)); }
        });
        for (const n of data.delta.citations || []) {
          if (!parts.some((p, i) => i % 2 === 1 && Number(p) === n)) current.append(el("a", { class: "cite", "data-number": n, onclick: () => open(n) }, `[${n}]`));
        }
        if (data.delta.support !== undefined) current.title = "support " + num(data.delta.support, 2);
      } else if (data.check) {
        const c = data.check;
        if (current) {
          const s = (c.status || "").replace("SENTENCE_STATUS_", "").toLowerCase();
          current.classList.add(s === "supported" ? "supported" : s);
          current.title = `${s}, support ${num(c.support, 2)}`;
          current.dataset.status = s;
        }
        current = null;
      } else if (data.done) {
        const d = data.done;
        status.replaceChildren(`${(d.finishReason || "").replace("FINISH_REASON_", "").toLowerCase()} · ${num(d.timings && d.timings.totalMs, 0)} ms · `,
          el("a", { id: "ask-record", href: "#/record/" + d.recordId }, "record " + d.recordId));
      }
    }
  } }, coll, question, mode, el("button", { id: "ask-go", type: "submit" }, "Ask")), answer, status, passage, el("h2", {}, "Passages"), cites);
};

// ---- history -------------------------------------------------------------

const filterFields = [
  ["collection", "f-collection", "collection"], ["sessionId", "f-session", "session"],
  ["textContains", "f-text", "text"], ["minRating", "f-min-rating", "min rating"],
];

function queryOf(form) {
  const q = new URLSearchParams();
  for (const [name, id] of filterFields) { const v = $("#" + id, form).value.trim(); if (v) q.set(name, v); }
  const after = $("#f-after", form).value, before = $("#f-before", form).value;
  if (after) q.set("createdAfter", String(new Date(after).getTime()));
  if (before) q.set("createdBefore", String(new Date(before).getTime()));
  if ($("#f-unsupported", form).checked) q.set("unsupported", "true");
  return q;
}

pages.history = async (page) => {
  page.append(el("h1", {}, "History"));
  const form = el("form", { class: "row", id: "history-filters" },
    filterFields.map(([, id, label]) => el("input", { id, placeholder: label, size: id === "f-min-rating" ? 8 : 16 })),
    "from", el("input", { id: "f-after", type: "datetime-local" }), "to", el("input", { id: "f-before", type: "datetime-local" }),
    el("label", {}, el("input", { id: "f-unsupported", type: "checkbox" }), " unsupported answers"),
    el("button", { id: "f-go", type: "submit" }, "Filter"),
    el("button", { id: "export", type: "button", onclick: () => exportRecords(form) }, "Export JSON lines"));
  const table = el("table", { id: "records" });
  const more = el("button", { id: "more", hidden: true }, "More");
  let token = "";
  const load = async (reset) => {
    if (reset) { token = ""; table.replaceChildren(el("tr", {}, ["Time", "Collection", "Question", "Answer", "Rating", "Finish"].map((h) => el("th", {}, h)))); }
    const q = queryOf(form); q.set("pageSize", "50"); if (token) q.set("pageToken", token);
    const r = await api("GET", "/v1/records?" + q.toString());
    for (const rec of r.records || []) {
      table.append(el("tr", { "data-id": rec.id, class: "record", onclick: () => { location.hash = "#/record/" + rec.id; } },
        el("td", {}, fmtTime(rec.createdAt)), el("td", {}, rec.collection),
        el("td", {}, el("a", { href: "#/record/" + rec.id }, rec.question)),
        el("td", {}, (rec.answer || "").slice(0, 160)),
        el("td", { class: "num rating" }, rec.rating === undefined ? "" : String(rec.rating)),
        el("td", {}, (rec.finishReason || "").replace("FINISH_REASON_", "").toLowerCase())));
    }
    token = r.nextPageToken || "";
    more.hidden = !token;
  };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(true).catch((e) => page.append(show(e.message))); });
  more.addEventListener("click", () => load(false).catch((e) => page.append(show(e.message))));
  page.append(form, table, more);
  await load(true);
};

async function exportRecords(form) {
  const q = queryOf(form);
  const res = await fetch("/v1/records/export?" + q.toString(), { headers: headers() });
  const blob = await res.blob();
  const a = el("a", { href: URL.createObjectURL(blob), download: "quarry-records.jsonl" });
  document.body.append(a); a.click(); a.remove();
}

pages.record = async (page, id) => {
  const r = await api("GET", "/v1/records/" + encodeURIComponent(id));
  const t = r.timings || {};
  page.append(el("h1", {}, "Record " + r.id),
    el("p", { class: "muted" }, `${fmtTime(r.createdAt)} · ${r.collection} · session ${r.sessionId || "–"} · ${r.principal || "anonymous"} · ${(r.answerMode || "").replace("ANSWER_MODE_", "").toLowerCase()}`),
    el("h2", {}, "Question"), el("p", { id: "record-question" }, r.question),
    el("h2", {}, "Answer"), el("div", { id: "record-answer" }, r.answer),
    r.supportedShare !== undefined ? el("p", { class: "muted" }, `supported share ${num(r.supportedShare, 2)} · replaced ${r.replacedSentences || 0} · dropped ${r.droppedSentences || 0}`) : "",
    el("h2", {}, "Rating"),
    el("form", { class: "row", id: "rate-form", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const out = await api("POST", `/v1/records/${encodeURIComponent(r.id)}/rating`, { score: Number($("#rate-score").value), comment: $("#rate-comment").value });
        $("#rate-status").textContent = `rated ${out.rating}`;
      } catch (e) { $("#rate-status").textContent = e.message; }
    } },
      el("select", { id: "rate-score" }, [5, 4, 3, 2, 1, 0, -1].map((s) => el("option", { value: s, selected: r.rating === s }, String(s)))),
      el("input", { id: "rate-comment", placeholder: "comment", value: r.comment || "", size: 40 }),
      el("button", { id: "rate-go", type: "submit" }, "Rate"), el("span", { id: "rate-status", class: "muted" }, r.rating === undefined ? "not rated" : `rated ${r.rating}`)),
    el("h2", {}, "Retrieved passages"),
    el("table", { id: "record-passages" }, el("tr", {}, ["Document", "Chunk", "Score"].map((h) => el("th", {}, h))),
      (r.retrieved || []).map((p) => el("tr", {}, el("td", {}, p.documentId), el("td", { class: "num" }, p.chunkId), el("td", { class: "num" }, num(p.score || 0, 4))))),
    el("h2", {}, "Sentences"),
    el("table", {}, el("tr", {}, ["Shown", "Status", "Support", "Citations"].map((h) => el("th", {}, h))),
      (r.sentences || []).map((s) => el("tr", {}, el("td", {}, s.shown || s.generated), el("td", {}, (s.status || "").replace("SENTENCE_STATUS_", "").toLowerCase()), el("td", { class: "num" }, num(s.support, 2)), el("td", {}, (s.citations || []).join(", "))))),
    el("h2", {}, "Timings and models"),
    el("p", { id: "record-timings" }, `retrieve ${num(t.retrieveMs, 0)} ms · prefill ${num(t.prefillMs, 0)} ms · first token ${num(t.firstTokenMs, 0)} ms · total ${num(t.totalMs, 0)} ms · ${r.promptTokens || 0} prompt / ${r.answerTokens || 0} answer tokens`),
    el("p", { id: "record-models" }, `generator ${r.generatorModel || "–"} · embedder ${r.embeddingModel || "–"}`),
    el("h2", {}, "Prompt"), el("pre", { id: "record-prompt" }, r.prompt || ""));
};

// ---- dashboard -----------------------------------------------------------

function chart(id, title, points, kind, unit) {
  const w = 400, h = 140, pad = 24;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h + pad}`);
  svg.id = id;
  const max = Math.max(1e-9, ...points.map((p) => p[1]));
  const x = (i) => pad + (points.length <= 1 ? 0 : (i * (w - 2 * pad)) / (points.length - 1));
  const y = (v) => h - (v / max) * (h - pad);
  const ns = (tag, attrs) => { const e = document.createElementNS(svg.namespaceURI, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  if (kind === "bars") {
    const bw = Math.min(40, Math.max(2, (w - 2 * pad) / Math.max(1, points.length) - 2));
    points.forEach((p, i) => svg.append(ns("rect", { x: x(i) - bw / 2 + (points.length === 1 ? bw / 2 : 0), y: y(p[1]), width: bw, height: h - y(p[1]) })));
  } else {
    svg.append(ns("polyline", { points: points.map((p, i) => `${x(i)},${y(p[1])}`).join(" ") }));
    points.forEach((p, i) => svg.append(ns("circle", { cx: x(i), cy: y(p[1]), r: 3 })));
  }
  const label = (text, lx, ly) => { const t = ns("text", { x: lx, y: ly }); t.textContent = text; svg.append(t); };
  label(`${num(max, unit === "%" ? 0 : 1)}${unit}`, 0, pad - 6);
  if (points.length) label(points[0][0], pad, h + 14);
  if (points.length > 1) label(points[points.length - 1][0], w - 6 * points[points.length - 1][0].length, h + 14);
  return el("div", { class: "chart" }, el("h2", {}, title), points.length ? svg : el("p", { class: "muted" }, "no data yet"));
}

pages.dashboard = async (page) => {
  page.append(el("h1", {}, "Dashboard"));
  const res = await fetch("/v1/records/export", { headers: headers() });
  if (!res.ok) throw new Error(await res.text());
  const lines = (await res.text()).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l)).filter((r) => !r.error);
  const hours = new Map();
  for (const r of lines) {
    const d = new Date(Number(r.createdAt));
    const key = `${d.getMonth() + 1}/${d.getDate()} ${String(d.getHours()).padStart(2, "0")}h`;
    if (!hours.has(key)) hours.set(key, []);
    hours.get(key).push(r);
  }
  const series = (f) => [...hours.entries()].map(([k, rs]) => [k, f(rs)]);
  const median = (xs) => { const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : 0; };
  const rated = (rs) => rs.filter((r) => r.rating !== undefined);
  page.append(el("p", { class: "muted", id: "dashboard-summary" }, `${lines.length} asks recorded`),
    el("div", { class: "charts", id: "dashboard" },
      chart("chart-asks", "Asks per hour", series((rs) => rs.length), "bars", ""),
      chart("chart-latency", "Median answer time per hour", series((rs) => median(rs.map((r) => r.timings && r.timings.totalMs))), "line", " ms"),
      chart("chart-ratings", "Mean rating per hour", series((rs) => { const x = rated(rs); return x.length ? x.reduce((a, r) => a + r.rating, 0) / x.length : 0; }), "line", ""),
      chart("chart-grounded", "Grounded answers fully supported, per hour", series((rs) => {
        const g = rs.filter((r) => r.supportedShare !== undefined);
        return g.length ? (100 * g.filter((r) => r.supportedShare >= 1).length) / g.length : 0;
      }), "line", "%")));
};

// ---- API reference (from /openapi.json) ---------------------------------

pages.api = async (page) => {
  const doc = await api("GET", "/openapi.json");
  page.append(el("h1", {}, doc.info.title + " " + doc.info.version), el("p", {}, doc.info.description),
    el("p", {}, "The document itself: ", el("a", { href: "/openapi.json" }, "/openapi.json"), " (OpenAPI 3.1)."));
  const ref = (s) => (s && s.$ref ? s.$ref.split("/").pop() : "");
  const list = el("table", { id: "api-routes" }, el("tr", {}, ["Method", "Path", "What", "Body", "Reply"].map((h) => el("th", {}, h))));
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const body = op.requestBody && Object.values(op.requestBody.content)[0].schema;
      const ok = op.responses["200"] && op.responses["200"].content && Object.values(op.responses["200"].content)[0];
      list.append(el("tr", {}, el("td", {}, method.toUpperCase()), el("td", {}, el("code", {}, path)), el("td", {}, op.summary),
        el("td", {}, ref(body) ? el("a", { href: "#/api/" + ref(body) }, ref(body)) : ""),
        el("td", {}, ok && ref(ok.schema) ? el("a", { href: "#/api/" + ref(ok.schema) }, ref(ok.schema)) : "")));
    }
  }
  page.append(list);
};

const apiPage = pages.api;
pages.api = async (page, name) => {
  if (!name) return apiPage(page);
  const doc = await api("GET", "/openapi.json");
  const s = doc.components.schemas[name];
  if (!s) throw new Error("no schema " + name);
  page.append(el("h1", {}, name), el("p", {}, s.description || ""), s.enum ? el("p", {}, "One of: ", s.enum.join(", ")) : "");
  const typeOf = (p) => (p.$ref ? el("a", { href: "#/api/" + p.$ref.split("/").pop() }, p.$ref.split("/").pop())
    : p.type === "array" ? el("span", {}, "list of ", typeOf(p.items)) : p.additionalProperties ? el("span", {}, "map to ", typeOf(p.additionalProperties)) : (p.type || "") + (p.format ? ` (${p.format})` : ""));
  if (s.properties) page.append(el("table", { id: "api-schema" }, el("tr", {}, ["Field", "Type", "Meaning"].map((h) => el("th", {}, h))),
    Object.entries(s.properties).map(([k, p]) => el("tr", {}, el("td", {}, el("code", {}, k)), el("td", {}, typeOf(p)), el("td", {}, p.description || "")))));
  page.append(el("p", {}, el("a", { href: "#/api" }, "all routes")));
};

// ---- start ---------------------------------------------------------------

if (sessionStorage.getItem(KEY) !== null) signIn().catch(() => sessionStorage.removeItem(KEY));
