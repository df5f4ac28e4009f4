// micro web: what every page shares. The navigation bar, el() to build DOM without
// innerHTML (every server string goes in as text), api() for the JSON API with its error
// shape, an SSE helper that reconnects, and small formatters.

/** The pages of the navigation bar: [page id, path, label]. */
const PAGES = [
  ["services", "/", "Services"],
  ["call", "/call", "Call"],
  ["publish", "/publish", "Publish"],
  ["terminal", "/terminal", "Terminal"],
];

/**
 * Build an element. attrs: "class", "text" (textContent), "on<event>" (listener),
 * "dataset" (object), boolean/props ("value", "checked", "disabled", "hidden", "selected")
 * set as properties, anything else via setAttribute. Children: nodes, strings (as text),
 * arrays (flattened), null/undefined/false (skipped).
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** Build an SVG element (same rules as el()). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "indeterminate"]);

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (PROPS.has(key)) node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Remove every child of node, then append children. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** An error answered by the JSON API: {"error": {"id","code","detail","status"}}. */
export class ApiError extends Error {
  constructor(code, detail, status, id) {
    super(detail || status || `HTTP ${code}`);
    this.code = code;
    this.detail = detail || "";
    this.status = status || "";
    this.id = id || "";
  }
}

/**
 * Call the dashboard's JSON API. A body object is sent as JSON. Answers the parsed JSON;
 * throws ApiError (the server's error, or a network/parse failure with code 0). A 401 on a
 * page sends the browser to /login.
 * @param {string} path
 * @param {{method?: string, body?: any, signal?: AbortSignal}} [options]
 */
export async function api(path, options = {}) {
  const init = {
    method: options.method || (options.body === undefined ? "GET" : "POST"),
    headers: { Accept: "application/json" },
    signal: options.signal,
    credentials: "same-origin",
  };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "the dashboard did not answer (is micro web running?)", "Network Error");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.status === 401 && !location.pathname.startsWith("/login")) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!response.ok) {
    const e = data && data.error;
    if (e && typeof e === "object") throw new ApiError(e.code || response.status, e.detail, e.status, e.id);
    throw new ApiError(response.status, text.slice(0, 300) || response.statusText, response.statusText);
  }
  if (data === null && text) throw new ApiError(response.status, "the answer is not JSON", "Bad Answer");
  return data;
}

/**
 * An error box for an ApiError (or any Error): code, status and detail as text.
 * @returns {HTMLElement}
 */
export function errorBox(err, testid) {
  const code = err && err.code !== undefined && err.code !== 0 ? String(err.code) : "";
  const status = err && err.status ? err.status : "Error";
  const detail = err && (err.detail !== undefined ? err.detail : err.message);
  return el(
    "div",
    { class: "error-box", role: "alert", "data-testid": testid || "error" },
    code ? el("span", { class: "code", "data-testid": "error-code", text: code }) : null,
    el("span", { class: "status", text: status }),
    detail ? el("pre", { "data-testid": "error-detail", text: String(detail) }) : null,
    err && err.id ? el("div", { class: "small", text: `from ${err.id}` }) : null,
  );
}

/** A loading / empty / error line. kind: "loading" | "empty" | "error". */
export function stateLine(kind, text, testid) {
  return el(
    "div",
    { class: `state ${kind === "error" ? "error" : ""}`, role: kind === "error" ? "alert" : "status", "data-testid": testid || `state-${kind}` },
    kind === "loading" ? el("span", { class: "spinner", "aria-hidden": "true" }) : null,
    text,
  );
}

/**
 * Follow a Server-Sent Events URL, reconnecting with a growing delay (1 s .. 15 s) when the
 * connection breaks or the server refuses it. handlers: {eventName: (data) => void} with
 * data parsed as JSON when it is JSON. onState("connecting" | "open" | "error").
 * @returns {{close: () => void}}
 */
export function sse(url, handlers, onState = () => {}) {
  let source = null;
  let closed = false;
  let delay = 1000;
  let timer = 0;

  function connect() {
    if (closed) return;
    onState("connecting");
    source = new EventSource(url, { withCredentials: true });
    source.onopen = () => {
      delay = 1000;
      onState("open");
    };
    source.onerror = () => {
      if (closed) return;
      onState("error");
      // The browser retries by itself unless the server refused (readyState CLOSED).
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      }
    };
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => {
        let data = event.data;
        try {
          data = JSON.parse(event.data);
        } catch {
          /* keep the text */
        }
        handler(data, event);
      });
    }
  }

  connect();
  const stop = () => {
    clearTimeout(timer);
    if (source) source.close();
    source = null;
  };
  // Leaving the page closes the stream; a page kept in the back/forward cache opens it again
  // when it is shown (with the events it missed in the next snapshot).
  const hide = (event) => {
    stop();
    if (!event.persisted) close();
  };
  const show = (event) => {
    if (event.persisted && !closed) {
      delay = 1000;
      connect();
    }
  };
  const close = () => {
    closed = true;
    stop();
    window.removeEventListener("pagehide", hide);
    window.removeEventListener("pageshow", show);
    onState("closed");
  };
  window.addEventListener("pagehide", hide);
  window.addEventListener("pageshow", show);
  return { close };
}

/** Pretty JSON (2 spaces); strings that are not JSON-able are shown as they are. */
export function pretty(value) {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** JSON on one line when it is short (a list of stream messages stays compact), else pretty. */
export function compact(value, width = 100) {
  if (value === undefined) return "";
  try {
    const line = JSON.stringify(value);
    return line.length <= width ? line : JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** "1.2 KiB", "34 MiB". */
export function fmtBytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** Seconds as "3d 4h", "5m 02s", "12s". */
export function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  s = Math.max(0, Math.floor(Number(s)));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

/** Milliseconds as "12.3 ms" / "1.52 s". */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Number(ms).toFixed(1)} ms`;
}

/** Unix seconds as a local "HH:MM:SS.mmm". */
export function fmtTime(t) {
  const d = new Date(t * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The page's query parameters. */
export function params() {
  return new URLSearchParams(location.search);
}

/** Link to a service's page. */
export function serviceHref(name) {
  return `/registry?service=${encodeURIComponent(name)}`;
}

/** Link to the call page, optionally preselecting an endpoint. */
export function callHref(service, endpoint) {
  // encodeURIComponent rather than URLSearchParams: the services page makes a thousand.
  const q = `service=${encodeURIComponent(service)}`;
  return endpoint ? `/call?${q}&endpoint=${encodeURIComponent(endpoint)}` : `/call?${q}`;
}

/** Metadata {k: v} as chips "k=v" (or a dash when empty). */
export function chips(meta, testid) {
  const entries = Object.entries(meta || {});
  if (!entries.length) return el("span", { class: "muted", text: "–" });
  return el(
    "div",
    { class: "chips", "data-testid": testid || "metadata" },
    entries.map(([k, v]) => el("span", { class: "chip" }, el("span", { class: "k", text: `${k}=` }), String(v))),
  );
}

/**
 * Key/value rows for metadata headers, with add/remove. Answers {node, get()} where get()
 * gives {key: value} of the rows whose key is not empty.
 */
export function metadataEditor(prefix) {
  const rows = el("div", { class: "meta-rows", "data-testid": `${prefix}-headers` });
  function addRow(key = "", value = "") {
    const k = el("input", { type: "text", placeholder: "Header", value: key, "aria-label": "metadata key", "data-testid": `${prefix}-meta-key`, autocomplete: "off" });
    const v = el("input", { type: "text", placeholder: "value", value, "aria-label": "metadata value", "data-testid": `${prefix}-meta-value`, autocomplete: "off" });
    const row = el(
      "div",
      { class: "row" },
      k,
      v,
      el("button", { type: "button", class: "small", "aria-label": "remove this header", title: "Remove", onclick: () => { row.remove(); } }, "✕"),
    );
    rows.append(row);
    return k;
  }
  const add = el("button", { type: "button", class: "small", "data-testid": `${prefix}-meta-add`, onclick: () => addRow().focus() }, "+ header");
  const node = el("div", {}, rows, add);
  return {
    node,
    addRow,
    get() {
      const out = {};
      for (const row of rows.children) {
        const [k, v] = row.querySelectorAll("input");
        if (k.value.trim()) out[k.value.trim()] = v.value;
      }
      return out;
    },
  };
}

/** Fill the header: brand, the navigation with the current page marked, and /_/info. */
function header() {
  const current = document.body.dataset.page || "";
  const env = el("div", { class: "env", "data-testid": "env" });
  const bar = el(
    "div",
    { class: "topbar-inner" },
    el("a", { class: "brand", href: "/" }, el("span", { class: "brand-mark", "aria-hidden": "true" }), "micro web"),
    current === "login"
      ? null
      : el(
      "nav",
      { "aria-label": "Main" },
      el(
        "ul",
        { class: "nav" },
        PAGES.map(([id, href, label]) =>
          el("li", {}, el("a", { href, "aria-current": id === current ? "page" : null, "data-testid": `nav-${id}` }, label)),
        ),
      ),
    ),
    env,
  );
  const top = document.querySelector("header.topbar");
  if (top) replace(top, bar);
  if (current !== "login") {
    api("/_/info")
      .then((info) => {
        const parts = [];
        if (info.namespace) parts.push(el("span", { title: "web namespace" }, "ns ", el("code", { text: info.namespace })));
        if (info.registry) parts.push(el("span", { title: "registry" }, "registry ", el("code", { text: info.registry })));
        if (info.broker) parts.push(el("span", { title: "broker", class: "hide-narrow" }, "broker ", el("code", { text: info.broker })));
        if (info.version) parts.push(el("span", { class: "hide-narrow", text: `v${info.version}` }));
        if (info.auth) {
          parts.push(
            el("form", { method: "post", action: "/logout", class: "logout" }, el("button", { type: "submit", class: "small", "data-testid": "logout" }, "Sign out")),
          );
        }
        replace(env, parts);
      })
      .catch(() => {});
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", header);
else header();
