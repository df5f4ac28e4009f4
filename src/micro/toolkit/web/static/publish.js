// The publish page: publish a JSON body to a topic through /_/publish, and tail a topic
// over SSE (/_/tail?topic=), newest message first.

import { api, compact, el, errorBox, fmtTime, metadataEditor, params, replace } from "/static/app.js";

const form = document.getElementById("publish-form");
const topic = document.getElementById("topic");
const body = document.getElementById("body");
const bodyError = document.getElementById("body-error");
const out = document.getElementById("publish-out");
const submit = document.getElementById("publish-submit");
const meta = metadataEditor("publish");
document.getElementById("meta").append(meta.node);

const tailForm = document.getElementById("tail-form");
const tailTopic = document.getElementById("tail-topic");
const tailToggle = document.getElementById("tail-toggle");
const tailStatus = document.getElementById("tail-status");
const tailList = document.getElementById("tail-list");
document.getElementById("tail-clear").addEventListener("click", () => tailList.replaceChildren());

const MAX_TAIL = 200;

const initial = params().get("topic") || "";
topic.value = initial;
tailTopic.value = initial;
const savedBody = initial && localStorage.getItem(`micro.publish.${initial}`);
if (savedBody) body.value = savedBody;

/** The body parsed, or undefined with the error shown on the box. */
function parseBody() {
  try {
    const value = JSON.parse(body.value);
    bodyError.textContent = "";
    body.removeAttribute("aria-invalid");
    return value;
  } catch (err) {
    bodyError.textContent = `Not valid JSON: ${err.message}`;
    body.setAttribute("aria-invalid", "true");
    return undefined;
  }
}

body.addEventListener("input", parseBody);
topic.addEventListener("input", () => {
  topic.removeAttribute("aria-invalid");
  if (!tailSource) tailTopic.value = topic.value;
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const t = topic.value.trim();
  if (!t) {
    topic.setAttribute("aria-invalid", "true");
    replace(out, el("span", { class: "field-error", "data-testid": "publish-error", text: "A topic is needed." }));
    topic.focus();
    return;
  }
  const value = parseBody();
  if (value === undefined) {
    body.focus();
    return;
  }
  submit.disabled = true;
  replace(out, el("span", { class: "spinner", "aria-hidden": "true" }), "publishing…");
  try {
    const data = await api("/_/publish", { body: { topic: t, body: value, metadata: meta.get() } });
    try {
      localStorage.setItem(`micro.publish.${t}`, body.value);
    } catch {
      /* nothing to keep */
    }
    replace(
      out,
      el(
        "div",
        { class: "ok-box", "data-testid": "publish-result" },
        `Published ${data.bytes} bytes to `,
        el("code", { text: data.topic }),
        ` at ${fmtTime(Date.now() / 1000)}`,
      ),
    );
  } catch (err) {
    replace(out, errorBox(err, "publish-error"));
  } finally {
    submit.disabled = false;
  }
});

form.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// ---- topic tail ----

let tailSource = null;
let tailCount = 0;

function stopTail(text) {
  if (tailSource) tailSource.close();
  tailSource = null;
  tailToggle.textContent = "Subscribe";
  tailToggle.classList.add("primary");
  tailToggle.classList.remove("danger");
  tailTopic.disabled = false;
  tailStatus.textContent = text || "Not subscribed.";
  tailStatus.dataset.state = "stopped";
}

function startTail() {
  const t = tailTopic.value.trim();
  if (!t) {
    tailTopic.setAttribute("aria-invalid", "true");
    tailStatus.textContent = "A topic is needed.";
    tailTopic.focus();
    return;
  }
  tailTopic.removeAttribute("aria-invalid");
  tailTopic.disabled = true;
  tailToggle.textContent = "Stop";
  tailToggle.classList.remove("primary");
  tailToggle.classList.add("danger");
  tailCount = 0;
  tailStatus.textContent = `Subscribing to ${t}…`;
  tailStatus.dataset.state = "connecting";
  // The browser's EventSource reconnects by itself while the server answers 200; an
  // answer like 400 (a bad topic) closes it, and then the tail stops with the error.
  const source = new EventSource(`/_/tail?topic=${encodeURIComponent(t)}`, { withCredentials: true });
  tailSource = source;
  source.onopen = () => {
    tailStatus.textContent = `Subscribed to ${t}: ${tailCount} message${tailCount === 1 ? "" : "s"}.`;
    tailStatus.dataset.state = "open";
  };
  source.onerror = () => {
    if (tailSource !== source) return;
    if (source.readyState === EventSource.CLOSED) {
      stopTail(`The tail of ${t} stopped: the dashboard refused or closed it.`);
      explainTail(t);
    } else {
      tailStatus.textContent = `Reconnecting to ${t}…`;
      tailStatus.dataset.state = "connecting";
    }
  };
  source.addEventListener("message", (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      data = { topic: t, t: Date.now() / 1000, header: {}, body: event.data };
    }
    tailCount += 1;
    tailStatus.textContent = `Subscribed to ${t}: ${tailCount} message${tailCount === 1 ? "" : "s"}.`;
    const headers = Object.entries(data.header || {});
    tailList.prepend(
      el(
        "li",
        { "data-testid": "tail-message" },
        el(
          "div",
          { class: "when" },
          el("time", { datetime: new Date((data.t || Date.now() / 1000) * 1000).toISOString(), text: fmtTime(data.t || Date.now() / 1000) }),
          el("code", { text: data.topic || t }),
          headers.length ? el("span", { text: `${headers.length} header${headers.length === 1 ? "" : "s"}`, title: headers.map(([k, v]) => `${k}: ${v}`).join("\n") }) : null,
        ),
        el("pre", { text: typeof data.body === "string" ? data.body : compact(data.body) }),
      ),
    );
    while (tailList.children.length > MAX_TAIL) tailList.lastElementChild.remove();
  });
}

/** Ask once more with fetch to show why the server refused the tail (its JSON error). */
async function explainTail(t) {
  const abort = new AbortController();
  try {
    const response = await fetch(`/_/tail?topic=${encodeURIComponent(t)}`, { signal: abort.signal, headers: { Accept: "application/json" } });
    if (response.ok) {
      abort.abort();
      return;
    }
    const text = await response.text();
    let e = null;
    try {
      e = JSON.parse(text).error;
    } catch {
      e = null;
    }
    const err = e || { code: response.status, status: response.statusText, detail: text.slice(0, 300) };
    tailStatus.replaceChildren(errorBox(err, "tail-error"));
  } catch {
    /* the dashboard is gone: the status line already says the tail stopped */
  }
}

tailForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (tailSource) stopTail(`Stopped after ${tailCount} message${tailCount === 1 ? "" : "s"}.`);
  else startTail();
});

window.addEventListener("pagehide", () => stopTail());
if (initial) topic.focus();
