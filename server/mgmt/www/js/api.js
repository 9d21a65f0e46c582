// api.js: the only way the UI talks to the broker, Warren's management
// HTTP API (RabbitMQ's paths and JSON), relative to the page so that the
// UI also works behind a reverse proxy under a path prefix.
//
// Credentials: the user and password typed at login are kept in
// sessionStorage (gone when the tab closes) and sent as HTTP Basic on
// every call. fetch() runs with credentials: "omit" so that a 401 never
// opens the browser's own login dialog; the page shows its login form
// instead. A 401 whose reason is about the login itself ("Login failed",
// "Not management user", ...) forgets the credentials and calls the
// handler set with onLoginNeeded(); any other 401 ("Access refused.",
// "Not administrator user") is an ordinary error for the page to show.

const KEY = "warren.credentials";
const LOGIN_REASONS = new Set(["", "Login failed", "Not management user", "User can only log in via localhost"]);

let loginNeeded = () => {};

export class ApiError extends Error {
    constructor(status, error, reason) {
        super(reason || error || `HTTP ${status}`);
        this.status = status;
        this.error = error;
        this.reason = reason;
    }
}

function utf8Base64(s) {
    let bin = "";
    for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
    return btoa(bin);
}

export function setCredentials(user, password) {
    sessionStorage.setItem(KEY, JSON.stringify({ user, token: utf8Base64(`${user}:${password}`) }));
}

export function clearCredentials() {
    sessionStorage.removeItem(KEY);
}

function credentials() {
    try {
        return JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
        return null;
    }
}

export function currentUser() {
    const c = credentials();
    return c ? c.user : null;
}

export function onLoginNeeded(fn) {
    loginNeeded = fn;
}

// The error text of a failed response: RabbitMQ's {"error", "reason"},
// where reason may itself be JSON (["not_int", "x"]).
async function errorOf(resp) {
    let text = "";
    try {
        text = await resp.text();
        const j = JSON.parse(text);
        const reason = typeof j.reason === "string" ? j.reason : JSON.stringify(j.reason);
        return new ApiError(resp.status, j.error, reason);
    } catch {
        return new ApiError(resp.status, "", text.trim());
    }
}

// Calls the API. path starts with "/" and is relative to api/, with every
// name already encoded (enc). body (an object) is sent as JSON. Resolves
// to the parsed JSON, or null for an empty reply; rejects with ApiError.
export async function call(method, path, body, headers = {}) {
    const c = credentials();
    if (!c) {
        loginNeeded("");
        throw new ApiError(401, "not_authorized", "Login needed");
    }
    const init = {
        method,
        headers: { Authorization: `Basic ${c.token}`, ...headers },
        credentials: "omit",
        cache: "no-store",
    };
    if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
    }
    const resp = await fetch(`api${path}`, init);
    if (!resp.ok) {
        const err = await errorOf(resp);
        if (resp.status === 401 && LOGIN_REASONS.has(err.reason || "")) {
            clearCredentials();
            loginNeeded(err.reason || "Login failed");
        }
        throw err;
    }
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
}

export const get = (path) => call("GET", path);
export const put = (path, body) => call("PUT", path, body === undefined ? {} : body);
export const post = (path, body) => call("POST", path, body === undefined ? {} : body);
export const del = (path, headers) => call("DELETE", path, undefined, headers);

// A list query string for the API's server-side paging, filtering and
// sorting (see server/mgmt_api_list.c).
export function listQuery({ page, pageSize, name, regex, sort, reverse, columns }) {
    const p = new URLSearchParams();
    p.set("page", String(page));
    p.set("page_size", String(pageSize));
    p.set("name", name || "");
    p.set("use_regex", regex ? "true" : "false");
    if (sort) p.set("sort", sort);
    p.set("sort_reverse", reverse ? "true" : "false");
    if (columns) p.set("columns", columns);
    return `?${p}`;
}
