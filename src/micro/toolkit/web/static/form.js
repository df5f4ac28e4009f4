// A form generated from an endpoint's request Field tree (see /_/service): typed inputs,
// nested objects as fieldsets, lists with add/remove, free JSON where the type says "any".
// Every input carries data-path ("name", "parent.child", "list[0].name") so that an error
// naming a field can be shown on it.

import { el } from "/static/app.js";

/** A value a user typed that cannot be sent (e.g. bad JSON in a free-JSON box). */
export class FormError extends Error {
  constructor(path, message) {
    super(message);
    this.path = path;
  }
}

let counter = 0;
const nextId = () => `f${++counter}`;

function join(path, name) {
  return path ? `${path}.${name}` : name;
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A label with the field's name, display type, required mark and description. */
function labelFor(id, field, text) {
  return el(
    "label",
    { for: id },
    text,
    field.required ? el("span", { class: "req", title: "required", text: "*" }) : null,
    " ",
    el("span", { class: "type", text: field.type || field.kind }),
  );
}

function hint(field) {
  return field.description ? el("span", { class: "hint", text: field.description }) : null;
}

/**
 * Build the control of one field holding value (undefined: empty).
 * Answers {node, get()} where get() gives the JSON value, or undefined when left empty.
 */
function control(field, value, path, labelText) {
  const kind = field.kind || "any";
  if (kind === "object" && (field.fields || []).length) return objectControl(field, value, path, labelText);
  if (kind === "array" && field.items && field.items.kind !== "any") return arrayControl(field, value, path, labelText);
  if (field.enum && field.enum.length) return enumControl(field, value, path, labelText);
  if (kind === "string") return textControl(field, value, path, labelText);
  if (kind === "integer" || kind === "number") return numberControl(field, value, path, labelText);
  if (kind === "boolean") return boolControl(field, value, path, labelText);
  return jsonControl(field, value, path, labelText);
}

function objectControl(field, value, path, labelText) {
  const obj = isObject(value) ? value : {};
  const known = new Set();
  const children = (field.fields || []).map((f) => {
    known.add(f.name);
    return { name: f.name, c: control(f, obj[f.name], join(path, f.name), f.name) };
  });
  // Keys the schema does not know are kept as they are, so raw JSON round-trips.
  const extras = Object.fromEntries(Object.entries(obj).filter(([k]) => !known.has(k)));
  const body = children.map(({ c }) => c.node);
  const node =
    labelText === null
      ? el("div", { class: "form-root", "data-path": path }, body)
      : el(
          "fieldset",
          { "data-path": path, "data-testid": "field-object" },
          el(
            "legend",
            {},
            labelText,
            field.required ? el("span", { class: "req", title: "required", text: "*" }) : null,
            " ",
            el("span", { class: "type", text: field.type || "object" }),
          ),
          hint(field),
          body,
        );
  return {
    node,
    get() {
      const out = { ...extras };
      for (const { name, c } of children) {
        const v = c.get();
        if (v !== undefined) out[name] = v;
      }
      if (labelText !== null && !field.required && !Object.keys(out).length) return undefined;
      return out;
    },
  };
}

function arrayControl(field, value, path, labelText) {
  const items = el("div", { class: "list-items" });
  let controls = [];
  const add = el("button", { type: "button", class: "small", "data-testid": "list-add", "data-list": path }, "+ add item");

  function rebuild(values) {
    controls = [];
    items.replaceChildren();
    values.forEach((v) => addItem(v));
  }

  function addItem(v) {
    const i = controls.length;
    const c = control({ ...field.items, required: false }, v, `${path}[${i}]`, `${field.name || "item"}[${i}]`);
    const remove = el(
      "button",
      {
        type: "button",
        class: "small",
        title: "Remove this item",
        "aria-label": `remove item ${i}`,
        "data-testid": "list-remove",
        onclick: () => {
          const keep = controls.filter((x) => x !== c).map((x) => x.get());
          rebuild(keep);
          add.focus();
        },
      },
      "✕",
    );
    controls.push(c);
    items.append(el("div", { class: "list-item", "data-testid": "list-item" }, el("div", { class: "grow" }, c.node), remove));
    return c;
  }

  add.addEventListener("click", () => {
    addItem(undefined);
    const last = items.lastElementChild && items.lastElementChild.querySelector("input, select, textarea");
    if (last) last.focus();
  });
  rebuild(Array.isArray(value) ? value : []);
  const node = el(
    "fieldset",
    { "data-path": path, "data-testid": "field-array" },
    el(
      "legend",
      {},
      labelText,
      field.required ? el("span", { class: "req", title: "required", text: "*" }) : null,
      " ",
      el("span", { class: "type", text: field.type || "list" }),
    ),
    hint(field),
    items,
    add,
  );
  return {
    node,
    get() {
      const out = controls.map((c) => c.get()).map((v) => (v === undefined ? null : v));
      if (!out.length && !field.required) return undefined;
      return out;
    },
  };
}

function wrap(field, id, labelText, input, extra) {
  return el("div", { class: "field", "data-field-path": input.dataset.path }, labelFor(id, field, labelText), input, hint(field), extra || null);
}

function inputAttrs(id, path, extra) {
  return { id, name: path, "data-path": path, "data-testid": "field-input", autocomplete: "off", ...extra };
}

function textControl(field, value, path, labelText) {
  const id = nextId();
  const input = el("input", inputAttrs(id, path, { type: "text", value: value === undefined || value === null ? "" : String(value), spellcheck: "false" }));
  return {
    node: wrap(field, id, labelText, input),
    get() {
      // Empty is "not sent" (the service then says what is missing); raw JSON sends "".
      if (input.value === "") return undefined;
      return input.value;
    },
  };
}

function numberControl(field, value, path, labelText) {
  const id = nextId();
  const input = el(
    "input",
    inputAttrs(id, path, {
      type: "number",
      step: field.kind === "integer" ? "1" : "any",
      inputmode: field.kind === "integer" ? "numeric" : "decimal",
      value: typeof value === "number" ? String(value) : "",
    }),
  );
  return {
    node: wrap(field, id, labelText, input),
    get() {
      if (input.value === "") return undefined;
      const n = Number(input.value);
      return Number.isFinite(n) ? n : input.value;
    },
  };
}

function boolControl(field, value, path, labelText) {
  const id = nextId();
  // Unchecked means "not sent" unless the value was given as false or the box was touched.
  let touched = value === false;
  const input = el("input", inputAttrs(id, path, { type: "checkbox", checked: value === true, onchange: () => { touched = true; } }));
  const node = el(
    "div",
    { class: "field", "data-field-path": path },
    el("label", { class: "toggle", for: id }, input, labelText, field.required ? el("span", { class: "req", title: "required", text: "*" }) : null, " ", el("span", { class: "type", text: field.type || "bool" })),
    hint(field),
  );
  return {
    node,
    get() {
      if (input.checked) return true;
      return touched ? false : undefined;
    },
  };
}

function enumControl(field, value, path, labelText) {
  const id = nextId();
  const options = [el("option", { value: "", text: "(not set)" })];
  field.enum.forEach((v, i) => {
    options.push(el("option", { value: String(i), text: typeof v === "string" ? v : JSON.stringify(v), selected: JSON.stringify(v) === JSON.stringify(value) }));
  });
  const input = el("select", inputAttrs(id, path, {}), options);
  return {
    node: wrap(field, id, labelText, input),
    get() {
      return input.value === "" ? undefined : field.enum[Number(input.value)];
    },
  };
}

function jsonControl(field, value, path, labelText) {
  const id = nextId();
  const input = el("textarea", inputAttrs(id, path, { rows: "3", spellcheck: "false", placeholder: "JSON", value: value === undefined ? "" : JSON.stringify(value, null, 2) }));
  return {
    node: wrap(field, id, labelText, input),
    get() {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch (err) {
        throw new FormError(path, `${labelText}: not valid JSON (${err.message})`);
      }
    },
  };
}

/**
 * The form of a request Field (null: none described). Answers {node, get(), supported}:
 * get() gives the request's JSON value (throws FormError); supported is false when there
 * is nothing to build a form from (the page then shows the raw JSON box only).
 */
export function buildForm(field, value) {
  if (!field) return { node: el("div"), get: () => (isObject(value) ? value : {}), supported: false };
  const c = field.kind === "object" ? objectControl({ ...field, required: true }, value, "", null) : control(field, value, "", "request");
  return {
    node: c.node,
    supported: field.kind !== "any",
    get() {
      const v = c.get();
      if (v === undefined) return field.kind === "object" ? {} : null;
      return v;
    },
  };
}

/**
 * Paths (as the form's data-path) and bare names an error detail may name: msgspec-style
 * `$.a.b[0]`, or any quoted word ('x', "x", `x`).
 */
export function namedInDetail(detail) {
  const paths = [];
  const names = [];
  for (const m of String(detail).matchAll(/\$((?:\.[A-Za-z_][\w-]*|\[\d+\])+)/g)) paths.push(m[1].replace(/^\./, ""));
  for (const m of String(detail).matchAll(/[`'"“‘]([A-Za-z_][\w.\-[\]]*)[`'"”’]/g)) names.push(m[1]);
  return { paths, names };
}

/**
 * Mark the inputs under root that the error detail names: aria-invalid, and the detail
 * shown under the field. Answers the marked elements (the first is focused by the caller).
 */
export function highlightErrors(root, detail) {
  const { paths, names } = namedInDetail(detail);
  const inputs = [...root.querySelectorAll("[data-path]")];
  const last = (p) => p.replace(/\[\d+\]$/, "").split(".").pop();
  // "missing field `name` at `$.owner`": the path joined with a quoted name comes first.
  const joined = paths.flatMap((p) => names.map((n) => join(p, n)));
  let hits = inputs.filter((i) => joined.includes(i.dataset.path));
  if (!hits.length) hits = inputs.filter((i) => paths.includes(i.dataset.path));
  if (!hits.length) hits = inputs.filter((i) => names.includes(i.dataset.path));
  if (!hits.length) hits = inputs.filter((i) => i.dataset.path && names.includes(last(i.dataset.path)));
  if (!hits.length) {
    // A bare word of the detail equal to a field's name ("a is required").
    const words = new Set(String(detail).split(/[^\w-]+/).filter((w) => w.length > 1));
    hits = inputs.filter((i) => i.dataset.path && words.has(last(i.dataset.path)));
  }
  for (const hit of hits) {
    hit.setAttribute("aria-invalid", "true");
    hit.classList.add("invalid");
    const holder = hit.matches("fieldset") ? hit : hit.closest(".field") || hit;
    holder.append(el("div", { class: "field-error", "data-testid": "field-error", text: String(detail) }));
  }
  return hits;
}

/** Undo highlightErrors. */
export function clearErrors(root) {
  for (const e of root.querySelectorAll('[aria-invalid="true"]')) e.removeAttribute("aria-invalid");
  for (const e of root.querySelectorAll(".invalid")) e.classList.remove("invalid");
  for (const e of root.querySelectorAll('[data-testid="field-error"]')) e.remove();
}
