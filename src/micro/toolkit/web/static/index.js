// The services page: every service of the registry, live over SSE (/_/events), a filter
// box ("/" focuses it), and the web services of the namespace listed apart as links.

import { api, callHref, el, errorBox, replace, serviceHref, sse, stateLine } from "/static/app.js";

const list = document.getElementById("services");
const count = document.querySelector('[data-testid="service-count"]');
const filter = document.getElementById("filter");
const live = document.querySelector('[data-testid="live"]');
const webSection = document.getElementById("web-section");
const webList = document.querySelector('[data-testid="web-list"]');

let current = null; // the last {services, web}
let seen = new Set(); // names shown before, to flash the new ones

filter.value = new URLSearchParams(location.search).get("q") || "";

/** Does the service match the filter words (all of them, in its name or versions)? */
function matches(service, words) {
  const hay = `${service.name} ${(service.versions || []).join(" ")}`.toLowerCase();
  return words.every((w) => hay.includes(w));
}

function render() {
  if (!current) return;
  const services = current.services || [];
  const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = services.filter((s) => matches(s, words));
  count.textContent = words.length ? `${shown.length} of ${services.length}` : String(services.length);
  count.title = `${services.length} service${services.length === 1 ? "" : "s"} registered`;

  if (!services.length) {
    replace(list, stateLine("empty", "No services registered yet. Start one and it appears here.", "empty"));
  } else if (!shown.length) {
    replace(list, stateLine("empty", `No service matches “${filter.value}”.`, "empty"));
  } else {
    const first = seen.size === 0;
    const rows = shown.map((s) => row(s, !first && !seen.has(s.name)));
    replace(
      list,
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          {},
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              el("th", { scope: "col", text: "Name" }),
              el("th", { scope: "col", class: "hide-narrow", text: "Versions" }),
              el("th", { scope: "col", class: "num", text: "Nodes" }),
              el("th", { scope: "col", class: "num hide-narrow", text: "Endpoints" }),
              el("th", { scope: "col" }, el("span", { class: "skip", text: "Actions" })),
            ),
          ),
          el("tbody", {}, rows),
        ),
      ),
    );
  }
  seen = new Set(services.map((s) => s.name));

  const web = current.web || [];
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

function row(s, isNew) {
  return el(
    "tr",
    { "data-testid": "service-row", "data-name": s.name, class: isNew ? "flash" : null },
    el("td", {}, el("a", { class: "name", href: serviceHref(s.name), "data-testid": "service-link" }, s.name)),
    el("td", { class: "hide-narrow" }, (s.versions || []).map((v) => el("span", { class: "badge", text: v || "(none)" })), " "),
    el("td", { class: "num", "data-testid": "service-nodes", text: String(s.nodes) }),
    el("td", { class: "num hide-narrow", text: String(s.endpoints) }),
    el("td", {}, s.endpoints ? el("a", { class: "button small", href: callHref(s.name), "aria-label": `call ${s.name}` }, "Call") : null),
  );
}

function setLive(state) {
  live.dataset.state = state;
  live.textContent = { open: "live", connecting: "connecting…", error: "reconnecting…", closed: "closed" }[state] || state;
  if (state === "error" && !current) {
    // The event stream is down before the first list: try the plain JSON once.
    api("/_/services")
      .then((data) => {
        if (!current) {
          current = data;
          render();
        }
      })
      .catch((err) => {
        if (!current) replace(list, errorBox(err, "services-error"));
      });
  }
}

sse("/_/events", { services: (data) => { current = data; render(); } }, setLive);

filter.addEventListener("input", () => {
  render();
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
