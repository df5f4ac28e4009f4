// A service's page: versions, nodes (with health and small charts of Debug.Stats polled
// from /_/nodes), endpoints with their request/response field trees, subscribers. The
// detail reloads when the registry changes (over /_/events).

import {
  api,
  callHref,
  chips,
  el,
  errorBox,
  fmtBytes,
  fmtSeconds,
  params,
  replace,
  sse,
  stateLine,
  svg,
} from "/static/app.js";

const name = params().get("service") || "";
const detail = document.getElementById("detail");
const title = document.querySelector('[data-testid="service-name"]');
const live = document.querySelector('[data-testid="live"]');
const callLink = document.getElementById("call-link");

title.textContent = name || "(no service named)";
document.title = `${name} · micro web`;
callLink.href = callHref(name);

/** node id -> {health: Element, charts: Element} of the rendered table. */
let nodeCells = new Map();
let lastSummary = undefined;
let loading = null;
let pollTimer = 0;
let lastStats = null;

async function load() {
  if (!name) {
    replace(detail, stateLine("error", "No service given: open a service from the services page.", "service-error"));
    return;
  }
  try {
    const data = await api(`/_/service?name=${encodeURIComponent(name)}`);
    render(data);
    if (!pollTimer) poll();
  } catch (err) {
    if (err.code === 404) replace(detail, stateLine("error", `No service named “${name}” is registered.`, "service-error"));
    else replace(detail, errorBox(err, "service-error"));
    callLink.hidden = true;
  }
}

function reload() {
  // Coalesce: one fetch at a time, and one more after it if asked meanwhile.
  if (loading) {
    loading.again = true;
    return;
  }
  loading = { again: false };
  load().finally(() => {
    const again = loading.again;
    loading = null;
    if (again) reload();
  });
}

function render(data) {
  nodeCells = new Map();
  const versions = data.versions || [];
  const nodes = versions.reduce((n, v) => n + (v.nodes || []).length, 0);
  const endpoints = versions.reduce((n, v) => n + (v.endpoints || []).length, 0);
  const subscribers = data.subscribers || [];
  callLink.hidden = endpoints === 0;
  replace(
    detail,
    el(
      "div",
      { class: "row small muted summary", "data-testid": "service-summary" },
      `${versions.length} version${versions.length === 1 ? "" : "s"} · ${nodes} node${nodes === 1 ? "" : "s"} · ${endpoints} endpoint${endpoints === 1 ? "" : "s"} · ${subscribers.length} subscriber${subscribers.length === 1 ? "" : "s"}`,
    ),
    versions.map(renderVersion),
    renderSubscribers(subscribers),
  );
  if (lastStats) applyStats(lastStats);
}

function renderVersion(v) {
  const label = v.version || "(no version)";
  const meta = Object.keys(v.metadata || {}).length;
  return el(
    "section",
    { class: "panel", "data-testid": "version", "data-version": v.version || "" },
    el("h2", {}, "Version ", el("span", { class: "badge accent", text: label })),
    meta ? el("div", { class: "row" }, el("span", { class: "muted small", text: "metadata" }), chips(v.metadata, "version-metadata")) : null,
    el("h3", { text: "Nodes" }),
    renderNodes(v.nodes || []),
    el("h3", { text: "Endpoints" }),
    (v.endpoints || []).length
      ? el("div", { "data-testid": "endpoints" }, v.endpoints.map(renderEndpoint))
      : stateLine("empty", "No endpoints.", "no-endpoints"),
  );
}

function renderNodes(nodes) {
  if (!nodes.length) return stateLine("empty", "No nodes.", "no-nodes");
  const rows = [];
  for (const n of nodes) {
    const health = el("span", { class: "badge", "data-testid": "node-health", text: "checking…" });
    const charts = el("div", { class: "charts", "data-testid": "node-charts" }, el("span", { class: "muted small", text: "stats loading…" }));
    nodeCells.set(n.id, { health, charts });
    rows.push(
      el(
        "tr",
        { "data-testid": "node-row", "data-id": n.id },
        el("td", { "data-label": "ID" }, el("code", { text: n.id })),
        el("td", { "data-label": "Address" }, el("code", { text: n.address })),
        el("td", { "data-label": "Metadata" }, chips(n.metadata, "node-metadata")),
        el("td", { "data-label": "Health" }, health),
      ),
      el("tr", { class: "node-charts-row" }, el("td", { colspan: "4" }, charts)),
    );
  }
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "stack" },
      el(
        "thead",
        {},
        el("tr", {}, ["ID", "Address", "Metadata", "Health"].map((h) => el("th", { scope: "col", text: h }))),
      ),
      el("tbody", {}, rows),
    ),
  );
}

/** Metadata keys shown another way: stream/subscriber as badges, *_schema as JSON. */
const SHOWN_APART = new Set(["stream", "subscriber"]);

function renderEndpoint(e) {
  const all = Object.entries(e.metadata || {});
  const schemas = all.filter(([k]) => k.endsWith("_schema"));
  const rest = Object.fromEntries(all.filter(([k]) => !k.endsWith("_schema") && !SHOWN_APART.has(k)));
  const meta = Object.keys(rest).length;
  return el(
    "article",
    { class: "endpoint", "data-testid": "endpoint", "data-name": e.name },
    el(
      "div",
      { class: "endpoint-head" },
      el("span", { class: "name", text: e.name }),
      e.stream ? el("span", { class: "badge warn", text: "stream" }) : null,
      e.subscriber ? el("span", { class: "badge accent", text: "subscriber" }) : null,
      el("span", { class: "spacer" }),
      e.subscriber
        ? null
        : el("a", { class: "button small", href: callHref(name, e.name), "data-testid": "endpoint-call" }, "Call"),
    ),
    meta ? el("div", { class: "small" }, chips(rest, "endpoint-metadata")) : null,
    el(
      "div",
      { class: "io" },
      el("div", {}, el("h4", { text: "Request" }), fieldTree(e.request, "request-tree")),
      el("div", {}, el("h4", { text: "Response" }), fieldTree(e.response, "response-tree")),
    ),
    schemas.length
      ? el(
          "details",
          { class: "schemas" },
          el("summary", { class: "small muted", text: "JSON Schema" }),
          schemas.map(([k, v]) => el("div", {}, el("h4", { text: k }), el("pre", { text: prettySchema(v) }))),
        )
      : null,
  );
}

function prettySchema(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text);
  }
}

/** A Field as a nested list: name, display type, required mark, enum values, description. */
function fieldTree(field, testid) {
  if (!field) return el("span", { class: "muted small", text: "not described" });
  const kids = childrenOf(field);
  if (!kids.length) return el("ul", { class: "tree", "data-testid": testid }, el("li", {}, el("span", { class: "ftype", text: field.type || field.kind })));
  return el("ul", { class: "tree", "data-testid": testid }, kids.map(fieldItem));
}

function childrenOf(field) {
  if (field.kind === "object") return field.fields || [];
  if (field.kind === "array" && field.items && field.items.kind === "object") return field.items.fields || [];
  return [];
}

function fieldItem(f) {
  const kids = childrenOf(f);
  return el(
    "li",
    { "data-field": f.name },
    el("span", { class: "fname", text: f.name }),
    f.required ? el("span", { class: "req", title: "required", text: "*" }) : null,
    el("span", { class: "ftype", text: f.type || f.kind }),
    f.enum && f.enum.length ? el("span", { class: "fdesc", text: `one of ${f.enum.map((x) => JSON.stringify(x)).join(", ")}` }) : null,
    f.description ? el("span", { class: "fdesc", text: `— ${f.description}` }) : null,
    kids.length ? el("ul", {}, kids.map(fieldItem)) : null,
  );
}

function renderSubscribers(subs) {
  return el(
    "section",
    { class: "panel", "data-testid": "subscribers" },
    el("h2", { text: "Subscribers" }),
    subs.length
      ? el(
          "div",
          { class: "table-wrap" },
          el(
            "table",
            { class: "stack" },
            el("thead", {}, el("tr", {}, ["Topic", "Endpoint", "Queue", "Version"].map((h) => el("th", { scope: "col", text: h })))),
            el(
              "tbody",
              {},
              subs.map((s) =>
                el(
                  "tr",
                  { "data-testid": "subscriber-row", "data-topic": s.topic },
                  el("td", { "data-label": "Topic" }, el("a", { href: `/publish?topic=${encodeURIComponent(s.topic)}`, title: "publish to this topic" }, el("code", { text: s.topic }))),
                  el("td", { "data-label": "Endpoint" }, el("code", { text: s.endpoint || "" })),
                  el("td", { "data-label": "Queue", text: s.queue || "–" }),
                  el("td", { "data-label": "Version", text: s.version || "–" }),
                ),
              ),
            ),
          ),
        )
      : stateLine("empty", "No subscribers.", "no-subscribers"),
  );
}

// ---- node stats ----

async function poll() {
  clearTimeout(pollTimer);
  let interval = 5;
  try {
    const stats = await api(`/_/nodes?service=${encodeURIComponent(name)}`);
    interval = Number(stats.interval) || 5;
    lastStats = stats;
    applyStats(stats);
  } catch (err) {
    for (const { charts } of nodeCells.values()) replace(charts, el("span", { class: "field-error", text: `stats unavailable: ${err.detail || err.message}` }));
  }
  pollTimer = setTimeout(poll, Math.min(Math.max(interval, 1), 30) * 1000);
}

function applyStats(stats) {
  for (const node of stats.nodes || []) {
    const cells = nodeCells.get(node.id);
    if (!cells) continue;
    const ok = node.health === "ok";
    cells.health.className = `badge ${ok ? "ok" : "bad"}`;
    cells.health.textContent = ok ? "healthy" : "unhealthy";
    cells.health.title = ok ? "Debug.Health answered ok" : String(node.error || node.health || "");
    const samples = node.samples || [];
    if (!samples.length) {
      replace(cells.charts, el("span", { class: "muted small", text: node.error ? `no stats: ${node.error}` : "no samples yet" }));
      continue;
    }
    replace(
      cells.charts,
      chart("uptime", samples, (s) => s.uptime, fmtSeconds),
      chart("memory", samples, (s) => s.memory, fmtBytes),
      chart("threads", samples, (s) => s.threads, (v) => String(v)),
      rateChart("requests/s", samples, (s) => s.requests),
      samples.some((s) => s.errors !== null && s.errors !== undefined) ? rateChart("errors/s", samples, (s) => s.errors) : null,
      statsList(node.stats || {}),
    );
  }
}

/** Every field of the node's last Debug.Stats, as servers send them (new ones included). */
function statsList(stats) {
  const keys = Object.keys(stats);
  if (!keys.length) return null;
  return el(
    "dl",
    { class: "stats", "data-testid": "node-stats" },
    keys.map((key) =>
      el(
        "div",
        { class: "stat" },
        el("dt", { text: key }),
        el("dd", { "data-stat": key, text: typeof stats[key] === "object" ? JSON.stringify(stats[key]) : String(stats[key]) }),
      ),
    ),
  );
}

/** A labelled sparkline of pick(sample) over time, with its last value formatted. */
function chart(label, samples, pick, format) {
  const points = samples.map((s) => [s.t, pick(s)]).filter(([, v]) => v !== null && v !== undefined);
  const last = points.length ? points[points.length - 1][1] : null;
  return chartBox(label, points, last === null ? "–" : format(last));
}

/** Per-second rate of a counter between consecutive samples. */
function rateChart(label, samples, pick) {
  const points = [];
  let prev = null;
  for (const s of samples) {
    const v = pick(s);
    if (v === null || v === undefined) continue;
    if (prev && s.t > prev.t && v >= prev.v) points.push([s.t, (v - prev.v) / (s.t - prev.t)]);
    prev = { t: s.t, v };
  }
  const total = prev ? prev.v : null;
  const rate = points.length ? points[points.length - 1][1] : null;
  const text = total === null ? "not reported" : `${rate === null ? "–" : rate.toFixed(rate < 10 ? 1 : 0)} · ${total} total`;
  return chartBox(label, points, text);
}

const W = 120;
const H = 28;

function chartBox(label, points, valueText) {
  return el(
    "div",
    { class: "chart", "data-testid": "chart", "data-chart": label },
    el("span", { class: "label", text: label }),
    sparkline(points, `${label}: ${valueText}`),
    el("span", { class: "value", text: valueText }),
  );
}

/** An inline SVG sparkline of [t, v] points (time on x, value scaled to the box on y). */
function sparkline(points, label) {
  const box = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label }, svg("title", { text: label }));
  if (!points.length) return box;
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  let lo = Math.min(...points.map((p) => p[1]));
  let hi = Math.max(...points.map((p) => p[1]));
  if (hi === lo) {
    hi += 1;
    lo = Math.max(0, lo - 1);
  }
  const x = (t) => (t1 === t0 ? W - 2 : 1 + ((t - t0) / (t1 - t0)) * (W - 3));
  const y = (v) => H - 2 - ((v - lo) / (hi - lo)) * (H - 4);
  const xy = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  if (points.length > 1) {
    box.append(svg("polygon", { class: "spark-area", points: `${x(t0).toFixed(1)},${H} ${xy.join(" ")} ${x(t1).toFixed(1)},${H}` }));
    box.append(svg("polyline", { class: "spark-line", points: xy.join(" ") }));
  }
  const [lx, ly] = xy[xy.length - 1].split(",");
  box.append(svg("circle", { class: "spark-dot", cx: lx, cy: ly, r: 2 }));
  return box;
}

// ---- live ----

function onServices(data) {
  const summary = (data.services || []).find((s) => s.name === name);
  const key = summary ? JSON.stringify(summary) : null;
  if (lastSummary === undefined) {
    lastSummary = key;
    return; // the first event: load() already runs
  }
  if (key !== lastSummary) {
    lastSummary = key;
    reload();
  }
}

function setLive(state) {
  live.dataset.state = state;
  live.textContent = { open: "live", connecting: "connecting…", error: "reconnecting…", closed: "closed" }[state] || state;
}

reload();
if (name) sse("/_/events", { services: onServices }, setLive);
else setLive("closed");
