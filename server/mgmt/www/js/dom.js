// dom.js: building the DOM safely, and formatting figures.
//
// Every name the broker reports (queues, exchanges, users, vhosts,
// client properties, message payloads) is hostile: it may hold "<", quotes
// or anything else. Markup is therefore only ever built with the `html`
// tagged template, which escapes each interpolated value unless it is
// itself the result of `html` (class Safe). Arrays are joined; null,
// undefined and false render as nothing. Nothing else writes innerHTML.
//
//   setHtml(el, html`<td>${name}</td>`)     // name is escaped
//   html`<ul>${items.map((i) => html`<li>${i}</li>`)}</ul>`

class Safe {
    constructor(s) {
        this.s = s;
    }
    toString() {
        return this.s;
    }
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ESC[c]);
}

function render(v) {
    if (v instanceof Safe) return v.s;
    if (Array.isArray(v)) return v.map(render).join("");
    if (v === null || v === undefined || v === false) return "";
    return esc(v);
}

export function html(strings, ...values) {
    let out = strings[0];
    for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1];
    return new Safe(out);
}

export function setHtml(el, content) {
    el.innerHTML = render(content);
}

export function $(sel, root = document) {
    return root.querySelector(sel);
}

export function $$(sel, root = document) {
    return Array.from(root.querySelectorAll(sel));
}

// A path segment for the API and for our hash routes (vhost "/" is %2F).
export const enc = encodeURIComponent;

// The value at a dotted key ("message_stats.publish_details.rate").
export function pick(obj, key) {
    let v = obj;
    for (const k of key.split(".")) {
        if (v === null || v === undefined) return undefined;
        v = v[k];
    }
    return v;
}

const numFmt = new Intl.NumberFormat("en-US");

export function fmtNum(n) {
    return n === undefined || n === null ? "" : numFmt.format(n);
}

// A rate in messages (or bytes) per second, as RabbitMQ shows it.
export function fmtRate(r) {
    if (r === undefined || r === null) return "";
    return (r >= 100 ? Math.round(r).toLocaleString("en-US") : r.toFixed(r >= 10 ? 1 : 2)) + "/s";
}

export function fmtBytes(n) {
    if (n === undefined || n === null) return "";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
        n /= 1024;
        i++;
    }
    return (i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
}

export function fmtDuration(ms) {
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
}

export function fmtTime(ms) {
    const d = new Date(ms);
    const p = (x) => String(x).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtBool(b) {
    return b ? "yes" : "no";
}

// A JSON value (arguments, properties, definitions) for a table cell.
export function fmtJson(v) {
    if (v === undefined || v === null) return "";
    if (typeof v === "object" && Object.keys(v).length === 0) return "";
    return JSON.stringify(v);
}

// Reads a form's named controls into a plain object (checkboxes as
// booleans).
export function formData(form) {
    const out = {};
    for (const el of form.elements) {
        if (!el.name) continue;
        out[el.name] = el.type === "checkbox" ? el.checked : el.value;
    }
    return out;
}

// Parses a JSON object typed by the user ("" is {}); throws a readable
// error for anything else.
export function parseJsonObject(text, what) {
    const t = (text || "").trim();
    if (!t) return {};
    let v;
    try {
        v = JSON.parse(t);
    } catch (e) {
        throw new Error(`${what}: not valid JSON (${e.message})`);
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error(`${what}: must be a JSON object`);
    return v;
}

// fn, called once input has been quiet for ms.
export function debounce(fn, ms) {
    let t = 0;
    return (...a) => {
        clearTimeout(t);
        t = setTimeout(() => fn(...a), ms);
    };
}
