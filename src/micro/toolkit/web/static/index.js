// The services page: every service of the registry, live over SSE (/_/events), a filter
// box ("/" focuses it), and the web services of the namespace listed apart as links.

import { api, callHref, el, errorBox, replace, serviceHref, sse, stateLine } from "/static/app.js";

const list = document.getElementById("services");
const count = document.querySelector('[data-testid="service-count"]');
const filter = document.getElementById("filter");
const live = document.querySelector('[data-testid="live"]');
const webSection = document.getElementById("web-section");
const webList = document.querySelector('[data-testid="web-list"]');

let current = null; // the last {services, web} drawn
let pending = null; // a snapshot waiting for the next frame (a newer one replaces it)
let frame = 0; // the requestAnimationFrame id while one is scheduled

/**
 * The rows, keyed by service name: {tr, name, key (what the row shows, to skip unchanged
 * ones), hay (the filter's text), cells}. Every service has one, shown or filtered out, so
 * an event or a filter moves the rows that changed and leaves the others alone.
 */
const rows = new Map();
let filled = false; // the first list was drawn (rows added later flash)
let table = null; // the table's wrapper, built once
let grid = null; // the table, whose row groups (tbody) hold the rows
const groups = []; // its row groups, in order
const GROUP = 50; // rows per group: the browser lays a group out only near the viewport
let mode = ""; // what #services shows: "table", "empty" or "nomatch <filter>"
let webKey = "";

const FLASH_MS = 1300; // a little over the .flash animation

filter.value = new URLSearchParams(location.search).get("q") || "";

/** Draw the newest snapshot in the next frame: events faster than frames make one redraw. */
function receive(data) {
  pending = data;
  if (!frame) frame = requestAnimationFrame(flush);
}

/** Apply the pending snapshot (if any) and the filter now. */
function flush() {
  if (frame) cancelAnimationFrame(frame);
  frame = 0;
  if (pending) {
    current = pending;
    pending = null;
    sync(current.services || []);
    renderWeb(current.web || []);
  }
  render();
}

/** Bring the rows in line with the services: add, update or drop only those that changed. */
function sync(services) {
  const names = new Set();
  for (const s of services) {
    names.add(s.name);
    const key = rowKey(s);
    const rec = rows.get(s.name);
    if (!rec) rows.set(s.name, makeRow(s, key, filled));
    else if (rec.key !== key) updateRow(rec, s, key);
  }
  for (const [name, rec] of rows) {
    if (!names.has(name)) {
      rec.tr.remove();
      rows.delete(name);
    }
  }
  filled = true;
}

/** The filter words of the box. */
function words() {
  return filter.value.toLowerCase().split(/\s+/).filter(Boolean);
}

/** Show the rows that match the filter, in the snapshot's (sorted) order, and the count. */
function render() {
  if (!current) return;
  const services = current.services || [];
  const w = words();
  const shown = [];
  for (const s of services) {
    const rec = rows.get(s.name);
    if (rec && w.every((word) => rec.hay.includes(word))) shown.push(rec);
  }
  setText(count, w.length ? `${shown.length} of ${services.length}` : String(services.length));
  const title = `${services.length} service${services.length === 1 ? "" : "s"} registered`;
  if (count.title !== title) count.title = title;

  if (!services.length) {
    show("empty", () => stateLine("empty", "No services registered yet. Start one and it appears here.", "empty"));
  } else if (!shown.length) {
    show(`nomatch ${filter.value}`, () => stateLine("empty", `No service matches “${filter.value}”.`, "empty"));
  } else {
    placeRows(shown);
    show("table", () => table);
  }
}

/** Put what #services shows (built by make()) unless it already shows it. */
function show(what, make) {
  if (mode === what) return;
  mode = what;
  replace(list, make());
}

/**
 * Make the row groups hold exactly the rows of shown, in that order, moving as few as they
 * can: rows no longer shown leave, then the others stay where they are and the newly shown
 * ones go in before the first row that follows them (past the last one: into the last
 * group, or a new one once it is full). Both lists are in name order.
 */
function placeRows(shown) {
  if (!table) buildTable();
  const keep = new Set(shown.map((rec) => rec.tr));
  for (const group of groups) for (const tr of Array.from(group.children)) if (!keep.has(tr)) tr.remove();
  const end = groups.length; // the groups made below only take rows past the last one
  let g = 0;
  let cursor = end ? groups[0].firstElementChild : null;
  for (const rec of shown) {
    while (!cursor && g < end - 1) cursor = groups[++g].firstElementChild;
    if (rec.tr === cursor) cursor = cursor.nextElementSibling;
    else if (cursor) cursor.parentNode.insertBefore(rec.tr, cursor);
    else lastGroup().append(rec.tr);
  }
  balance();
}

/** The last row group, or a new one after it when it is full (or there is none). */
function lastGroup() {
  const last = groups[groups.length - 1];
  if (last && last.childElementCount < GROUP) return last;
  const group = el("tbody", { role: "rowgroup" });
  grid.append(group);
  groups.push(group);
  return group;
}

/**
 * Keep the row groups between 1 and 2 * GROUP rows (empty ones go, big ones are split:
 * their rows move, the same elements), and tell the CSS how many rows each holds (the
 * height it assumes for a group it has not laid out).
 */
function balance() {
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i];
    const n = group.childElementCount;
    if (!n) {
      group.remove();
      groups.splice(i--, 1);
      continue;
    }
    if (n > 2 * GROUP) {
      const rest = Array.from(group.children).slice(GROUP);
      let after = group;
      const made = [];
      for (let j = 0; j < rest.length; j += GROUP) {
        const part = el("tbody", { role: "rowgroup" }, rest.slice(j, j + GROUP));
        after.after(part);
        after = part;
        made.push(part);
      }
      groups.splice(i + 1, 0, ...made);
    }
    const rows = String(group.childElementCount);
    if (group.dataset.rows !== rows) {
      group.dataset.rows = rows;
      group.style.setProperty("--rows", rows);
    }
  }
}

/** The table and its head, built once; its row groups are filled by placeRows(). */
function buildTable() {
  grid = el(
    "table",
    // The roles stay those of a table although the CSS lays the rows out as grids.
    { class: "services", role: "table" },
    el(
      "thead",
      { role: "rowgroup" },
      el(
        "tr",
        { role: "row" },
        el("th", { scope: "col", role: "columnheader", text: "Name" }),
        el("th", { scope: "col", role: "columnheader", class: "hide-narrow", text: "Versions" }),
        el("th", { scope: "col", role: "columnheader", class: "num", text: "Nodes" }),
        el("th", { scope: "col", role: "columnheader", class: "num hide-narrow", text: "Endpoints" }),
        el("th", { scope: "col", role: "columnheader" }, el("span", { class: "skip", text: "Actions" })),
      ),
    ),
  );
  table = el("div", { class: "table-wrap" }, grid);
}

/** What a row shows, as one string: equal keys, nothing to redraw. */
function rowKey(s) {
  return `${s.nodes}|${s.endpoints}|${(s.versions || []).join("\u0000")}`;
}

/**
 * A row with its five cells, copied for each service (cloning one is much cheaper than
 * building a thousand from scratch, which the first frame does). It holds what most rows
 * show, one version badge and the Call link, so that a new row mostly only gets its text
 * and links. The cells keep the roles of a table: the CSS lays the rows out as grids.
 */
const ROW = el(
  "tr",
  { role: "row", "data-testid": "service-row" },
  el("td", { role: "cell" }, el("a", { class: "name", "data-testid": "service-link" })),
  el("td", { role: "cell", class: "hide-narrow" }, el("span", { class: "badge" }), " "),
  el("td", { role: "cell", class: "num", "data-testid": "service-nodes" }),
  el("td", { role: "cell", class: "num hide-narrow" }),
  el("td", { role: "cell" }, el("a", { class: "button small" }, "Call")),
);
const CALL = ROW.lastElementChild.firstElementChild;

function makeRow(s, key, isNew) {
  const tr = ROW.cloneNode(true);
  tr.setAttribute("data-name", s.name);
  const name = tr.firstElementChild;
  const versions = name.nextElementSibling;
  const nodes = versions.nextElementSibling;
  const endpoints = nodes.nextElementSibling;
  const actions = endpoints.nextElementSibling;
  const link = name.firstElementChild;
  link.setAttribute("href", serviceHref(s.name));
  link.textContent = s.name;
  const rec = { tr, name: s.name, key, hay: hayOf(s), versions, nodes, endpoints, actions };
  const v = s.versions || [];
  if (v.length === 1) versions.firstChild.textContent = v[0] || "(none)";
  else setBadges(versions, v);
  nodes.textContent = String(s.nodes);
  endpoints.textContent = String(s.endpoints);
  if (s.endpoints) setCall(actions.firstChild, s.name);
  else actions.firstChild.remove();
  if (isNew) {
    tr.classList.add("flash");
    setTimeout(() => tr.classList.remove("flash"), FLASH_MS);
  }
  return rec;
}

function updateRow(rec, s, key) {
  rec.key = key;
  fillRow(rec, s);
}

/** Write the cells that depend on the data (the name never changes: it is the key). */
function fillRow(rec, s) {
  rec.hay = hayOf(s);
  setBadges(rec.versions, s.versions || []);
  setText(rec.nodes, String(s.nodes));
  setText(rec.endpoints, String(s.endpoints));
  const call = rec.actions.firstElementChild;
  if (s.endpoints && !call) rec.actions.append(setCall(CALL.cloneNode(true), s.name));
  else if (!s.endpoints && call) call.remove();
}

/** A badge per version (then a space) in cell. */
function setBadges(cell, versions) {
  const badges = versions.map((v) => {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = v || "(none)";
    return badge;
  });
  cell.replaceChildren(...badges, " ");
}

/** The Call link of a row: the call page for the service. */
function setCall(link, name) {
  link.setAttribute("href", callHref(name));
  link.setAttribute("aria-label", `call ${name}`);
  return link;
}

/** What the filter looks in: the name and the versions, in lower case. */
function hayOf(s) {
  return `${s.name} ${(s.versions || []).join(" ")}`.toLowerCase();
}

/** Set a node's text only when it differs (no needless mutation, no re-announcement). */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** The web services of the namespace, as links (redrawn only when they change). */
function renderWeb(web) {
  const key = JSON.stringify(web);
  if (key === webKey) return;
  webKey = key;
  webSection.hidden = web.length === 0;
  replace(
    webList,
    web.map((w) =>
      el(
        "li",
        {},
        el("a", { href: w.path, "data-testid": "web-link", "data-name": w.name, title: w.service }, w.name),
      ),
    ),
  );
}

function setLive(state) {
  live.dataset.state = state;
  live.textContent = { open: "live", connecting: "connecting…", error: "reconnecting…", closed: "closed" }[state] || state;
  if (state === "error" && !current) {
    // The event stream is down before the first list: try the plain JSON once.
    api("/_/services")
      .then((data) => {
        if (!current && !pending) {
          pending = data;
          flush();
        }
      })
      .catch((err) => {
        if (!current) replace(list, errorBox(err, "services-error"));
      });
  }
}

/**
 * The services JSON the page was served with (its data block, filled by the server; empty
 * when the registry was not loaded yet, or the file is served as it is), or null.
 */
function embedded() {
  const block = document.getElementById("snapshot");
  const text = block ? block.textContent : "";
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// The rows the page came with are drawn at once, before the event stream connects; its
// first snapshot then changes only the rows that differ.
const first = embedded();
if (first) {
  pending = first;
  flush();
}
sse("/_/events", { services: receive }, setLive);

filter.addEventListener("input", () => {
  flush(); // at once: the rows under the box follow each key
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("q", filter.value);
  else url.searchParams.delete("q");
  history.replaceState(null, "", url);
});
filter.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    filter.value = "";
    filter.dispatchEvent(new Event("input"));
  }
});
document.addEventListener("keydown", (event) => {
  const t = event.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || (t && t.isContentEditable);
  if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    filter.focus();
    filter.select();
  }
});
