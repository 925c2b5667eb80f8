// API reference: fetches /openapi.json and renders it — operations grouped by tag, with
// parameters, request and response bodies (schemas with $ref resolved), examples, and the
// schemas themselves, the ErrorCode table included. DOM built with textContent only.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete", "head", "options", "trace"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// `code` spans in a line of text.
function inline(text) {
  const out = [];
  String(text).split(/(`[^`]*`)/).forEach((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      out.push(el("code", {}, part.slice(1, -1)));
    } else if (part) {
      out.push(part);
    }
  });
  return out;
}

// The Markdown the document uses: paragraphs, `code` and pipe tables.
function markdown(text) {
  const box = el("div", { class: "md" });
  if (!text) return box;
  const blocks = String(text).split(/\n\s*\n/);
  for (const block of blocks) {
    const lines = block.split("\n").filter((l) => l.trim());
    if (lines.length >= 2 && lines.every((l) => l.trim().startsWith("|"))) {
      const cells = (l) => l.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
      const table = el("table", {});
      table.append(el("thead", {}, el("tr", {}, cells(lines[0]).map((c) => el("th", {}, inline(c))))));
      const body = el("tbody", {});
      for (const l of lines.slice(2)) body.append(el("tr", {}, cells(l).map((c) => el("td", {}, inline(c)))));
      table.append(body);
      box.append(table);
    } else {
      box.append(el("p", {}, inline(lines.join(" "))));
    }
  }
  return box;
}

function refName(ref) {
  return ref.split("/").pop();
}

function resolve(spec, ref) {
  if (!ref.startsWith("#/")) return undefined;
  return ref.slice(2).split("/").reduce((o, k) => (o ? o[k.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined), spec);
}

function typeOf(s) {
  if (!s) return "any";
  if (s.$ref) return refName(s.$ref);
  let t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
  if (t === "array" || (Array.isArray(s.type) && s.type.includes("array"))) {
    t = `${typeOf(s.items)}[]` + (Array.isArray(s.type) && s.type.includes("null") ? " | null" : "");
  }
  if (!t && s.oneOf) t = s.oneOf.map(typeOf).join(" | ");
  if (!t && s.anyOf) t = s.anyOf.map(typeOf).join(" | ");
  if (!t && s.allOf) t = s.allOf.map(typeOf).join(" & ");
  if (s.format) t = `${t || "any"} (${s.format})`;
  return t || "object";
}

function facts(s) {
  const out = [];
  if (!s) return out;
  if (s.enum) out.push(el("span", { class: "fact" }, "one of ", s.enum.map((v, i) => [i ? ", " : "", el("code", {}, JSON.stringify(v))])));
  if (s.minimum !== undefined) out.push(el("span", { class: "fact" }, `min ${s.minimum}`));
  if (s.maximum !== undefined) out.push(el("span", { class: "fact" }, `max ${s.maximum}`));
  if (s.default !== undefined) out.push(el("span", { class: "fact" }, "default ", el("code", {}, JSON.stringify(s.default))));
  if (s.example !== undefined) out.push(el("span", { class: "fact" }, "example ", el("code", {}, JSON.stringify(s.example))));
  if (s.examples !== undefined) out.push(el("span", { class: "fact" }, "examples ", el("code", {}, JSON.stringify(s.examples))));
  return out;
}

// A schema as a table of properties, nested schemas folded into <details>.
function schemaView(spec, schema, seen = new Set()) {
  if (!schema) return el("span", {}, "any");
  if (schema.$ref) {
    const name = refName(schema.$ref);
    const target = resolve(spec, schema.$ref);
    if (!target) return el("span", { class: "error" }, `unresolved ${schema.$ref}`);
    if (seen.has(name)) return el("a", { href: `#schema-${name}` }, name);
    const next = new Set(seen).add(name);
    return el("details", { class: "schema" },
      el("summary", {}, el("a", { href: `#schema-${name}` }, name)),
      schemaView(spec, target, next));
  }
  const box = el("div", { class: "schema-body" });
  if (schema.description) box.append(markdown(schema.description));
  const variants = schema.oneOf || schema.anyOf || schema.allOf;
  if (variants) {
    const label = schema.oneOf ? "one of" : schema.anyOf ? "any of" : "all of";
    box.append(el("div", {}, label), el("ul", {}, variants.map((v) => el("li", {}, typeOf(v), " ", facts(v), schemaView(spec, v, seen)))));
  }
  if (schema.properties) {
    const required = new Set(schema.required || []);
    const rows = Object.entries(schema.properties).map(([name, p]) =>
      el("tr", {},
        el("td", {}, el("code", {}, name), required.has(name) ? el("span", { class: "req" }, " required") : ""),
        el("td", {}, typeOf(p)),
        el("td", {}, p.description ? markdown(p.description) : "", facts(p),
          p.$ref || (p.items && p.items.$ref) ? schemaView(spec, p.$ref ? p : p.items, seen) : "",
          p.oneOf || p.anyOf || p.allOf ? schemaView(spec, { oneOf: p.oneOf, anyOf: p.anyOf, allOf: p.allOf }, seen) : "")));
    box.append(el("table", { class: "props" }, el("thead", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description"))), el("tbody", {}, rows)));
  } else if (!variants) {
    box.append(el("div", {}, el("span", { class: "type" }, typeOf(schema)), " ", facts(schema)));
    if (schema.items && schema.items.$ref) box.append(schemaView(spec, schema.items, seen));
  }
  return box;
}

function examplesView(media) {
  const out = [];
  if (media.example !== undefined) out.push(exampleBlock("example", media.example));
  for (const [name, ex] of Object.entries(media.examples || {})) {
    out.push(exampleBlock(ex.summary || name, ex.value));
  }
  return out;
}

function exampleBlock(title, value) {
  return el("div", { class: "example" }, el("div", { class: "example-title" }, title),
    el("pre", {}, typeof value === "string" ? value : JSON.stringify(value, null, 2)));
}

function contentView(spec, content) {
  return Object.entries(content || {}).map(([type, media]) =>
    el("div", { class: "media" }, el("div", { class: "media-type" }, el("code", {}, type)),
      media.schema ? schemaView(spec, media.schema) : "", examplesView(media)));
}

function operationView(spec, path, method, op) {
  const id = `op-${op.operationId || method + path}`;
  const section = el("section", { class: "op", id });
  section.append(el("h3", {}, el("span", { class: `method ${method}` }, method.toUpperCase()), " ", el("code", {}, path), " — ", op.summary || ""));
  if (op.description) section.append(markdown(op.description));
  const security = (op.security || []).flatMap((req) => Object.keys(req));
  section.append(el("p", { class: "auth" }, security.length
    ? ["API key: ", security.map((s, i) => [i ? " or " : "", el("a", { href: "#security" }, s)])]
    : "No API key needed."));
  if (op.parameters && op.parameters.length) {
    section.append(el("h4", {}, "Parameters"), el("table", { class: "props" },
      el("thead", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "description"))),
      el("tbody", {}, op.parameters.map((p) => el("tr", {},
        el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : ""),
        el("td", {}, p.in), el("td", {}, typeOf(p.schema)),
        el("td", {}, markdown(p.description), facts(p.schema), p.example !== undefined ? el("span", { class: "fact" }, "example ", el("code", {}, JSON.stringify(p.example))) : ""))))));
  }
  if (op.requestBody) {
    section.append(el("h4", {}, "Request body", op.requestBody.required ? "" : " (optional)"));
    if (op.requestBody.description) section.append(markdown(op.requestBody.description));
    section.append(...contentView(spec, op.requestBody.content));
  }
  section.append(el("h4", {}, "Responses"));
  for (const [status, resp] of Object.entries(op.responses || {})) {
    const r = resp.$ref ? resolve(spec, resp.$ref) || {} : resp;
    const cls = status.startsWith("2") || status.startsWith("3") ? "ok" : "err";
    const block = el("details", { class: `response ${cls}` }, el("summary", {}, el("span", { class: `status ${cls}` }, status), " ", inline(r.description || "")));
    const headers = Object.entries(r.headers || {});
    if (headers.length) block.append(el("div", { class: "headers" }, "Headers: ", headers.map(([h, v], i) => [i ? ", " : "", el("code", {}, h), v.description ? ` (${v.description})` : ""])));
    block.append(...contentView(spec, r.content));
    section.append(block);
  }
  return section;
}

function render(spec) {
  const content = document.getElementById("content");
  const toc = document.getElementById("toc");
  content.replaceChildren();
  document.getElementById("version").textContent = spec.info && spec.info.version ? `v${spec.info.version}` : "";
  if (spec.info && spec.info.description) content.append(el("section", { class: "intro" }, markdown(spec.info.description)));

  const tags = (spec.tags || []).map((t) => t.name);
  const byTag = new Map(tags.map((t) => [t, []]));
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op]);
    }
  }
  const tocList = el("ul", {});
  for (const [tag, ops] of byTag) {
    if (!ops.length) continue;
    const info = (spec.tags || []).find((t) => t.name === tag);
    const group = el("section", { class: "tag", id: `tag-${tag}` }, el("h2", {}, tag));
    if (info && info.description) group.append(markdown(info.description));
    const sub = el("ul", {});
    for (const [path, method, op] of ops) {
      group.append(operationView(spec, path, method, op));
      sub.append(el("li", {}, el("a", { href: `#op-${op.operationId || method + path}` }, el("span", { class: `method ${method}` }, method.toUpperCase()), " ", path)));
    }
    tocList.append(el("li", {}, el("a", { href: `#tag-${tag}` }, tag), sub));
    content.append(group);
  }

  const schemes = (spec.components && spec.components.securitySchemes) || {};
  const sec = el("section", { class: "tag", id: "security" }, el("h2", {}, "Authentication"));
  for (const [name, s] of Object.entries(schemes)) {
    sec.append(el("p", {}, el("code", {}, name), ": ", s.type, s.scheme ? ` ${s.scheme}` : "", s.name ? ` header ${s.name}` : "", " — ", inline(s.description || "")));
  }
  content.append(sec);

  const schemas = (spec.components && spec.components.schemas) || {};
  const schemaSection = el("section", { class: "tag", id: "schemas" }, el("h2", {}, "Schemas"));
  const schemaToc = el("ul", {});
  for (const [name, schema] of Object.entries(schemas)) {
    schemaSection.append(el("section", { class: "schema-def", id: `schema-${name}` }, el("h3", {}, name), schemaView(spec, schema, new Set([name]))));
    schemaToc.append(el("li", {}, el("a", { href: `#schema-${name}` }, name)));
  }
  content.append(schemaSection);
  tocList.append(el("li", {}, el("a", { href: "#security" }, "Authentication")));
  tocList.append(el("li", {}, el("a", { href: "#schemas" }, "Schemas"), schemaToc));
  toc.replaceChildren(tocList);
  if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target) target.scrollIntoView();
  }
}

fetch("/openapi.json", { headers: { accept: "application/json" } })
  .then((r) => {
    if (!r.ok) throw new Error(`/openapi.json answered ${r.status}`);
    return r.json();
  })
  .then(render)
  .catch((e) => {
    document.getElementById("content").replaceChildren(el("p", { class: "error" }, `Could not load the API document: ${e.message}`));
  });
