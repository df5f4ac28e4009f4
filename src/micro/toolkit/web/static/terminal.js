// The terminal page: an input line whose commands run on the dashboard (/_/terminal) with
// micro cli's parser and output; a scrollback, and a history (Up/Down) kept in localStorage.

import { api, el } from "/static/app.js";

const out = document.getElementById("term-out");
const input = document.getElementById("term-input");
const formEl = document.getElementById("term-form");
const terminal = document.getElementById("terminal");

const HISTORY_KEY = "micro.terminal.history";
const MAX_HISTORY = 200;
const MAX_ENTRIES = 500;

let history = [];
try {
  history = JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]").filter((x) => typeof x === "string");
} catch {
  history = [];
}
let position = history.length; // history.length: the line being typed
let draft = "";
let busy = false;

function print(node) {
  out.append(node);
  while (out.children.length > MAX_ENTRIES) out.firstElementChild.remove();
  out.scrollTop = out.scrollHeight;
}

function echo(line) {
  print(el("div", { class: "cmd", "data-testid": "terminal-command" }, el("span", { class: "prompt", text: "micro> " }), line));
}

function remember(line) {
  if (history[history.length - 1] !== line) history.push(line);
  if (history.length > MAX_HISTORY) history = history.slice(-MAX_HISTORY);
  try {
    localStorage.setItem(HISTORY_KEY, JSON.stringify(history));
  } catch {
    /* storage off: history lasts this page only */
  }
  position = history.length;
  draft = "";
}

function clear() {
  out.replaceChildren();
}

async function run(line) {
  echo(line);
  remember(line);
  if (line === "clear" || line === "cls") {
    clear();
    return;
  }
  busy = true;
  input.setAttribute("aria-busy", "true");
  const pending = el("div", { class: "info" }, el("span", { class: "spinner", "aria-hidden": "true" }), "running…");
  print(pending);
  try {
    const data = await api("/_/terminal", { body: { line } });
    pending.remove();
    const text = String(data.output || "").replace(/\n$/, "");
    if (text) print(el("div", { class: data.code ? "err" : "", "data-testid": "terminal-result", "data-code": String(data.code), text }));
    else if (data.code) print(el("div", { class: "err", "data-testid": "terminal-result", "data-code": String(data.code), text: `exit code ${data.code}` }));
  } catch (err) {
    pending.remove();
    print(el("div", { class: "err", "data-testid": "terminal-result", "data-code": "error", text: `${err.status || "Error"}: ${err.detail || err.message}` }));
  } finally {
    busy = false;
    input.removeAttribute("aria-busy");
    input.focus();
  }
}

formEl.addEventListener("submit", (event) => {
  event.preventDefault();
  if (busy) return;
  const line = input.value.trim();
  input.value = "";
  if (!line) {
    echo("");
    return;
  }
  run(line);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "ArrowUp") {
    if (!history.length || position === 0) return;
    event.preventDefault();
    if (position === history.length) draft = input.value;
    position -= 1;
    input.value = history[position];
    input.setSelectionRange(input.value.length, input.value.length);
  } else if (event.key === "ArrowDown") {
    if (position >= history.length) return;
    event.preventDefault();
    position += 1;
    input.value = position === history.length ? draft : history[position];
    input.setSelectionRange(input.value.length, input.value.length);
  } else if (event.key === "l" && event.ctrlKey) {
    event.preventDefault();
    clear();
  }
});

// A click in the scrollback (without selecting text) goes back to the input line.
out.addEventListener("click", () => {
  if (!String(window.getSelection() || "")) input.focus();
});
terminal.addEventListener("keydown", (event) => {
  if (event.target === out && event.key.length === 1 && !event.ctrlKey && !event.metaKey) input.focus();
});

print(el("div", { class: "info", text: "micro web terminal: the commands of micro cli. Type help to list them." }));
input.focus();
