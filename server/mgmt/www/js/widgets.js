// widgets.js: the pieces several pages share: collapsible sections, fact
// tables, queue feature tags, the vhost chooser of forms, and links to
// object pages. All build markup with dom.js's escaping `html`.

import { html, enc, fmtJson } from "./dom.js";

// A collapsible section (RabbitMQ's pages fold the same way).
export function section(title, body, { open = true, id = "" } = {}) {
    return html`<details class="section" ${open ? html`open` : ""} ${id ? html`id="${id}"` : ""}>
        <summary>${title}</summary>
        <div class="body">${body}</div>
    </details>`;
}

// rows: [[label, value], ...]; a row whose value is undefined is left out.
export function facts(rows) {
    return html`<table class="facts-table">
        ${rows.filter((r) => r[1] !== undefined).map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}
    </table>`;
}

export function queueHref(vhost, name) {
    return `#/queues/${enc(vhost)}/${enc(name)}`;
}

// The default exchange has the empty name; its page is amq.default, as in
// RabbitMQ's URLs.
export function exchangeHref(vhost, name) {
    return `#/exchanges/${enc(vhost)}/${enc(name || "amq.default")}`;
}

export function exchangeLabel(name) {
    return name === "" ? html`<i>(AMQP default)</i>` : name;
}

// RabbitMQ's feature tags: D durable, AD auto-delete, Excl exclusive, I
// internal, and one tag per argument (its name with the value as title).
const ARG_TAGS = {
    "x-message-ttl": "TTL",
    "x-expires": "Exp",
    "x-max-length": "Lim",
    "x-max-length-bytes": "Lim B",
    "x-overflow": "Ovfl",
    "x-dead-letter-exchange": "DLX",
    "x-dead-letter-routing-key": "DLK",
    "x-max-priority": "Pri",
    "x-single-active-consumer": "SAC",
    "x-queue-mode": "Mode",
    "alternate-exchange": "AE",
};

export function features(o) {
    const tags = [];
    if (o.durable) tags.push(["D", "durable"]);
    if (o.auto_delete) tags.push(["AD", "auto-delete"]);
    if (o.exclusive) tags.push(["Excl", "exclusive"]);
    if (o.internal) tags.push(["I", "internal"]);
    for (const [k, v] of Object.entries(o.arguments || {})) tags.push([ARG_TAGS[k] || k, `${k}: ${JSON.stringify(v)}`]);
    return tags.map(([t, title]) => html`<span class="tag feature" title="${title}">${t}</span>`);
}

export function tags(list) {
    const a = Array.isArray(list) ? list : String(list || "").split(",").filter(Boolean);
    return a.map((t) => html`<span class="tag">${t}</span>`);
}

// A <select name="vhost"> of the vhosts the user sees, the chosen one (or
// "/") selected.
export function vhostSelect(ctx, name = "vhost") {
    const chosen = ctx.vhost || (ctx.vhosts.includes("/") ? "/" : ctx.vhosts[0]);
    return html`<select name="${name}">
        ${ctx.vhosts.map((v) => html`<option value="${v}" ${v === chosen ? html`selected` : ""}>${v}</option>`)}
    </select>`;
}

// A JSON object for a table cell (arguments, definitions), monospaced.
export function jsonCell(v) {
    const s = fmtJson(v);
    return s ? html`<span class="mono">${s}</span>` : "";
}

// The API path of a list, narrowed to the chosen vhost when there is one:
// list("/queues", ctx) is /queues or /queues/%2F.
export function vhostPath(base, ctx) {
    return ctx.vhost ? `${base}/${enc(ctx.vhost)}` : base;
}
