// The call page: pick a service and an endpoint, fill the form generated from the request's
// Field tree (or raw JSON), call through /_/call; streaming endpoints go over the /_/stream
// WebSocket and can be cancelled.

import { api, compact, el, errorBox, fmtMs, metadataEditor, params, pretty, replace, stateLine } from "/static/app.js";
import { FormError, buildForm, clearErrors, highlightErrors } from "/static/form.js";

const form = document.getElementById("call-form");
const serviceSel = document.getElementById("service");
const endpointSel = document.getElementById("endpoint");
const info = document.getElementById("endpoint-info");
const formArea = document.getElementById("form-area");
const rawArea = document.getElementById("raw-area");
const raw = document.getElementById("raw");
const rawError = document.getElementById("raw-error");
const rawToggle = document.getElementById("raw-toggle");
const timeout = document.getElementById("timeout");
const submit = document.getElementById("submit");
const cancel = document.getElementById("cancel");
const result = document.getElementById("result");

const meta = metadataEditor("call");
document.getElementById("meta").append(meta.node);

let endpoints = []; // of the selected service
let endpoint = null; // the selected Endpoint
let built = null; // buildForm() of the endpoint
let running = null; // {cancel()} of the call in flight

const STORE = "micro.call.";

// ---- pickers ----

async function loadServices() {
  const q = params();
  try {
    const data = await api("/_/services");
    const services = data.services || [];
    replace(
      serviceSel,
      el("option", { value: "", text: services.length ? "Choose a service…" : "No services registered" }),
      services.map((s) => el("option", { value: s.name, text: s.name, disabled: s.endpoints === 0 })),
    );
    const want = q.get("service");
    if (want) {
      if (!services.some((s) => s.name === want)) serviceSel.append(el("option", { value: want, text: `${want} (not registered)` }));
      serviceSel.value = want;
      await loadEndpoints(q.get("endpoint"));
    }
  } catch (err) {
    replace(serviceSel, el("option", { value: "", text: "Could not load services" }));
    replace(result, errorBox(err, "call-error"));
  }
}

async function loadEndpoints(want) {
  const name = serviceSel.value;
  endpoints = [];
  endpoint = null;
  endpointSel.disabled = true;
  replace(endpointSel, el("option", { value: "", text: name ? "Loading…" : "–" }));
  replace(formArea);
  info.textContent = "";
  if (!name) return;
  try {
    const data = await api(`/_/service?name=${encodeURIComponent(name)}`);
    const byName = new Map();
    for (const v of data.versions || []) {
      for (const e of v.endpoints || []) if (!e.subscriber && !byName.has(e.name)) byName.set(e.name, e);
    }
    endpoints = [...byName.values()];
    replace(
      endpointSel,
      endpoints.length ? null : el("option", { value: "", text: "No endpoints" }),
      endpoints.map((e) => el("option", { value: e.name, text: e.stream ? `${e.name} (stream)` : e.name })),
    );
    endpointSel.disabled = endpoints.length === 0;
    if (want && byName.has(want)) endpointSel.value = want;
    selectEndpoint();
  } catch (err) {
    replace(endpointSel, el("option", { value: "", text: "–" }));
    replace(formArea, errorBox(err, "call-error"));
  }
}

function selectEndpoint() {
  endpoint = endpoints.find((e) => e.name === endpointSel.value) || null;
  const url = new URL(location.href);
  url.searchParams.set("service", serviceSel.value);
  if (endpoint) url.searchParams.set("endpoint", endpoint.name);
  else url.searchParams.delete("endpoint");
  history.replaceState(null, "", url);
  if (!endpoint) {
    replace(formArea);
    return;
  }
  replace(
    info,
    endpoint.stream ? el("span", { class: "badge warn", text: "server stream" }) : null,
    endpoint.request ? ` request ${endpoint.request.type || endpoint.request.kind}` : " request not described",
    endpoint.response ? ` → ${endpoint.response.type || endpoint.response.kind}` : "",
  );
  let saved;
  try {
    saved = JSON.parse(localStorage.getItem(STORE + key()) || "null");
  } catch {
    saved = null;
  }
  setForm(saved === null ? undefined : saved);
}

function key() {
  return `${serviceSel.value}/${endpoint ? endpoint.name : ""}`;
}

/** (Re)build the form for the endpoint holding value; raw mode when there is no form. */
function setForm(value) {
  built = buildForm(endpoint.request, value);
  if (built.supported && rawToggle.disabled) rawToggle.checked = false; // raw was forced before
  replace(formArea, built.supported ? built.node : stateLine("empty", "This endpoint does not describe its request: write it as JSON.", "no-form"));
  rawToggle.disabled = !built.supported;
  if (!built.supported) {
    rawToggle.checked = true;
    raw.value = pretty(value === undefined ? {} : value);
  } else if (rawToggle.checked) {
    raw.value = pretty(built.get());
  }
  showMode();
}

function showMode() {
  rawArea.hidden = !rawToggle.checked;
  formArea.hidden = rawToggle.checked && built && built.supported;
  rawError.textContent = "";
  raw.removeAttribute("aria-invalid");
}

rawToggle.addEventListener("change", () => {
  if (!built) {
    showMode();
    return;
  }
  if (rawToggle.checked) {
    try {
      raw.value = pretty(built.get());
    } catch (err) {
      rawToggle.checked = false;
      replace(result, errorBox({ status: "Bad input", detail: err.message }, "call-error"));
      return;
    }
    showMode();
    raw.focus();
  } else {
    let value;
    try {
      value = JSON.parse(raw.value || "{}");
    } catch (err) {
      rawToggle.checked = true;
      rawError.textContent = `Not valid JSON: ${err.message}`;
      raw.setAttribute("aria-invalid", "true");
      return;
    }
    if (endpoint.request && endpoint.request.kind === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) {
      rawToggle.checked = true;
      rawError.textContent = "The form needs a JSON object.";
      raw.setAttribute("aria-invalid", "true");
      return;
    }
    setForm(value);
  }
});

raw.addEventListener("input", () => {
  try {
    JSON.parse(raw.value || "{}");
    rawError.textContent = "";
    raw.removeAttribute("aria-invalid");
  } catch (err) {
    rawError.textContent = `Not valid JSON: ${err.message}`;
    raw.setAttribute("aria-invalid", "true");
  }
});

serviceSel.addEventListener("change", () => loadEndpoints(null));
endpointSel.addEventListener("change", selectEndpoint);

// ---- calling ----

/** The request value from the form or the raw box; null (and the error shown) if bad. */
function requestValue() {
  clearErrors(formArea);
  if (rawToggle.checked) {
    try {
      return { value: JSON.parse(raw.value || "{}") };
    } catch (err) {
      rawError.textContent = `Not valid JSON: ${err.message}`;
      raw.setAttribute("aria-invalid", "true");
      raw.focus();
      return null;
    }
  }
  try {
    return { value: built.get() };
  } catch (err) {
    if (err instanceof FormError) {
      const hits = highlightErrors(formArea, `\`${err.path}\`: ${err.message}`);
      if (hits[0]) hits[0].focus();
      replace(result, errorBox({ status: "Bad input", detail: err.message }, "call-error"));
      return null;
    }
    throw err;
  }
}

function busy(on) {
  submit.disabled = on;
  cancel.hidden = !on;
  if (!on) running = null;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (running) return;
  if (!serviceSel.value || !endpoint) {
    replace(result, stateLine("error", "Pick a service and an endpoint first.", "call-error"));
    (serviceSel.value ? endpointSel : serviceSel).focus();
    return;
  }
  const req = requestValue();
  if (!req) return;
  try {
    localStorage.setItem(STORE + key(), JSON.stringify(req.value));
  } catch {
    /* storage full or off: nothing to keep */
  }
  const t = timeout.value === "" ? null : Number(timeout.value);
  const body = { service: serviceSel.value, endpoint: endpoint.name, request: req.value, metadata: meta.get(), timeout: Number.isFinite(t) && t > 0 ? t : null };
  if (endpoint.stream) runStream(body);
  else runCall(body);
});

form.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

cancel.addEventListener("click", () => {
  if (running) running.cancel();
});

function showCallError(err) {
  replace(result, errorBox(err, "call-error"));
  if (err && err.detail && !rawToggle.checked) {
    const hits = highlightErrors(formArea, err.detail);
    if (hits[0]) hits[0].focus();
  }
}

async function runCall(body) {
  const abort = new AbortController();
  running = { cancel: () => abort.abort() };
  busy(true);
  replace(result, stateLine("loading", `Calling ${body.service} ${body.endpoint}…`, "call-loading"));
  try {
    const data = await api("/_/call", { body, signal: abort.signal });
    const node = data.node;
    replace(
      result,
      el(
        "div",
        { class: "result-meta", "data-testid": "call-meta" },
        el("span", { class: "badge ok", text: "OK" }),
        el("span", { "data-testid": "call-duration", text: fmtMs(data.duration_ms) }),
        node ? el("span", { "data-testid": "call-node" }, "node ", el("code", { text: node.id }), " ", el("code", { text: node.address })) : null,
      ),
      el("pre", { "data-testid": "call-result", tabindex: "0", text: pretty(data.response) }),
    );
  } catch (err) {
    if (err && err.name === "AbortError") replace(result, stateLine("empty", "Cancelled.", "call-cancelled"));
    else showCallError(err);
  } finally {
    busy(false);
  }
}

function runStream(body) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/_/stream`);
  const list = el("ol", { class: "stream-list", "data-testid": "stream-list" });
  const spinning = (text) => el("span", {}, el("span", { class: "spinner", "aria-hidden": "true" }), text);
  const status = el("div", { class: "result-meta", "data-testid": "stream-status", role: "status" }, spinning("connecting…"));
  const started = performance.now();
  let count = 0;
  let done = false;
  const finish = (text, cls) => {
    done = true;
    replace(status, el("span", { class: `badge ${cls}`, text }), el("span", { text: `${count} message${count === 1 ? "" : "s"} in ${fmtMs(performance.now() - started)}` }));
    status.dataset.state = cls === "ok" ? "ended" : cls === "warn" ? "cancelled" : "failed";
    busy(false);
  };
  running = {
    cancel() {
      if (done) return;
      ws.close(1000, "cancelled");
      finish("cancelled", "warn");
    },
  };
  busy(true);
  replace(result, status, list);
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify(body));
    replace(status, spinning("streaming…"), el("span", { text: "Cancel stops it" }));
  });
  ws.addEventListener("message", (event) => {
    if (done) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { message: event.data };
    }
    if (data.error) {
      const e = data.error;
      result.append(errorBox({ code: e.code, status: e.status, detail: e.detail, id: e.id }, "call-error"));
      finish("error", "bad");
      if (e.detail && !rawToggle.checked) highlightErrors(formArea, e.detail);
      return;
    }
    if (data.end) {
      finish("ended", "ok");
      return;
    }
    count += 1;
    list.append(el("li", { "data-testid": "stream-message" }, el("span", { class: "n", text: String(count) }), el("pre", { text: compact(data.message) })));
    list.scrollTop = list.scrollHeight;
  });
  ws.addEventListener("close", (event) => {
    if (!done) finish(event.code === 1000 ? "closed" : `closed (${event.code})`, event.code === 1000 ? "ok" : "bad");
  });
  ws.addEventListener("error", () => {
    if (!done) {
      result.append(errorBox({ status: "WebSocket error", detail: "the stream connection failed" }, "call-error"));
      finish("error", "bad");
    }
  });
}

loadServices();
