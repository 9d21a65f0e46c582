// app.js: the web management UI's shell. It logs in, draws the header and
// tabs, routes the location hash to a page module, and refreshes the page
// every 5 s (the API samples its statistics every 5 s too, as RabbitMQ's).
//
// Routes (names are URL-encoded path segments; vhost "/" is %2F):
//   #/                       overview        #/queues/VHOST/NAME  a queue
//   #/connections #/channels #/exchanges     #/exchanges/VHOST/NAME
//   #/queues  #/users  #/vhosts  #/permissions  #/policies  #/nodes
//
// A page module exports one function, (main, ctx, args) -> {refresh,
// destroy}: it builds its static parts (forms) once and refresh() updates
// the figures in place, so typing in a form survives the refresh. ctx
// carries the user, the chosen vhost and the helpers below.

import * as api from "./api.js";
import { $, $$, html, setHtml, fmtTime } from "./dom.js";
import overviewPage from "./pages/overview.js";
import connectionsPage from "./pages/connections.js";
import channelsPage from "./pages/channels.js";
import { exchangesPage, exchangePage } from "./pages/exchanges.js";
import queuesPage from "./pages/queues.js";
import queuePage from "./pages/queue.js";
import { usersPage, vhostsPage, permissionsPage, policiesPage } from "./pages/admin.js";
import nodesPage from "./pages/nodes.js";

const REFRESH_MS = 5000;
const VHOST_KEY = "warren.vhost";

// [pattern, tab, page, tags of which the user needs one (none: any)]:
// the API refuses the others, so the page is not even tried.
const ROUTES = [
    [/^$/, "overview", overviewPage],
    [/^connections$/, "connections", connectionsPage],
    [/^channels$/, "channels", channelsPage],
    [/^exchanges$/, "exchanges", exchangesPage],
    [/^exchanges\/([^/]+)\/([^/]+)$/, "exchanges", exchangePage],
    [/^queues$/, "queues", queuesPage],
    [/^queues\/([^/]+)\/([^/]+)$/, "queues", queuePage],
    [/^users$/, "admin", usersPage, ["administrator"]],
    [/^vhosts$/, "admin", vhostsPage, ["administrator"]],
    [/^permissions$/, "admin", permissionsPage, ["administrator"]],
    [/^policies$/, "admin", policiesPage, ["administrator", "policymaker"]],
    [/^nodes$/, "nodes", nodesPage, ["administrator", "monitoring"]],
];

const ctx = {
    user: null, // {name, tags: []}
    overview: null, // the last /api/overview
    vhosts: [], // names the user may see
    get vhost() {
        return sessionStorage.getItem(VHOST_KEY) || "";
    },
    is(...tags) {
        return !!this.user && tags.some((t) => this.user.tags.includes(t));
    },
    get isAdmin() {
        return this.is("administrator");
    },
    flash,
    go(hash) {
        if (location.hash === hash) route();
        else location.hash = hash;
    },
    // Runs an action (a form submit, a button), reports its outcome and
    // refreshes the page (unless refresh is false: the caller moves on).
    // Returns the action's result, or undefined when it failed.
    async act(fn, okText, { refresh = true } = {}) {
        try {
            const res = await fn();
            if (okText) flash(typeof okText === "function" ? okText(res) : okText);
            if (refresh) tick();
            return res;
        } catch (e) {
            if (!(e instanceof api.ApiError && e.status === 401 && !api.currentUser())) flash(e.message, "error");
            return undefined;
        }
    },
    refreshVhosts,
};

let current = null; // {refresh, destroy}
let timer = 0;
let generation = 0;

// ---- flash messages

let flashTimer = 0;
let flashAt = 0;
function flash(text, kind = "ok") {
    const f = $("#flash");
    clearTimeout(flashTimer);
    flashAt = Date.now();
    f.className = `flash ${kind}`;
    f.textContent = text;
    f.hidden = false;
    if (kind === "ok") flashTimer = setTimeout(() => (f.hidden = true), 5000);
}

// ---- login

function showLogin(reason) {
    stop();
    $("#app").hidden = true;
    $("#login").hidden = false;
    const err = $("#login-error");
    err.textContent = reason || "";
    err.hidden = !reason;
    $("#login-password").value = "";
    $("#login-username").focus();
}

async function start() {
    try {
        const [who, overview] = await Promise.all([api.get("/whoami"), api.get("/overview")]);
        ctx.user = { name: who.name, tags: Array.isArray(who.tags) ? who.tags : String(who.tags || "").split(",") };
        ctx.overview = overview;
        await refreshVhosts();
    } catch (e) {
        if (api.currentUser()) showLogin(e.message);
        return;
    }
    $("#login").hidden = true;
    $("#app").hidden = false;
    drawHeader();
    route();
}

async function refreshVhosts() {
    const list = await api.get("/vhosts?columns=name");
    ctx.vhosts = list.map((v) => v.name);
    const chosen = ctx.vhost;
    if (chosen && !ctx.vhosts.includes(chosen)) sessionStorage.removeItem(VHOST_KEY);
    setHtml(
        $("#vhost-select"),
        html`<option value="">All</option>
            ${ctx.vhosts.map((v) => html`<option value="${v}" ${v === ctx.vhost ? html`selected` : ""}>${v}</option>`)}`,
    );
}

function drawHeader() {
    const o = ctx.overview;
    setHtml(
        $("#facts"),
        html`<span>Cluster <b>${o.cluster_name}</b></span> <span>${o.product_name} <b>${o.product_version}</b></span>
            <span>User <b id="whoami">${ctx.user.name}</b></span>`,
    );
    $("#tab-admin").hidden = !ctx.is("administrator", "policymaker");
    $("#tab-admin").href = ctx.isAdmin ? "#/users" : "#/policies";
    $("#tab-nodes").hidden = !ctx.is("administrator", "monitoring");
    document.title = `Warren: ${o.cluster_name}`;
}

// ---- routing and refresh

function stop() {
    clearTimeout(timer);
    generation++;
    if (current && current.destroy) current.destroy();
    current = null;
}

function route() {
    if (!ctx.user) return;
    stop();
    // a message belongs to the page it was shown on, unless the action
    // that showed it is what brought us here ("Queue deleted.")
    if (Date.now() - flashAt > 1000) $("#flash").hidden = true;
    const path = location.hash.replace(/^#\/?/, "");
    // A fresh element per page: its listeners go away with it.
    const main = document.createElement("div");
    $("#main").replaceChildren(main);
    let found = null;
    for (const [re, tab, page, tags] of ROUTES) {
        const m = path.match(re);
        if (m) {
            try {
                found = { tab, page, tags, args: m.slice(1).map(decodeURIComponent) };
            } catch {
                found = null; // a malformed %-escape: no such page
            }
            break;
        }
    }
    for (const a of $$("#tabs a")) a.classList.toggle("active", !!found && a.dataset.tab === found.tab);
    if (!found) {
        setHtml(main, html`<h1>Not found</h1><p>There is no page at ${location.hash}. <a href="#/">Overview</a></p>`);
        return;
    }
    if (found.tags && !ctx.is(...found.tags)) {
        setHtml(
            main,
            html`<h1>Not allowed</h1>
                <p>This page needs a user tagged ${found.tags.join(" or ")}. <a href="#/">Overview</a></p>`,
        );
        return;
    }
    current = found.page(main, ctx, found.args) || {};
    tick();
}

async function tick() {
    clearTimeout(timer);
    const gen = ++generation;
    if (!current || !current.refresh) return;
    if (!document.hidden) {
        try {
            await current.refresh();
            $("#updated").textContent = `Refreshed ${fmtTime(Date.now())}`;
        } catch (e) {
            if (gen !== generation) return;
            if (!(e instanceof api.ApiError && e.status === 401 && !api.currentUser())) flash(e.message, "error");
        }
    }
    if (gen === generation) timer = setTimeout(tick, REFRESH_MS);
}

// ---- wiring

function init() {
    api.onLoginNeeded((reason) => {
        ctx.user = null;
        showLogin(reason);
    });
    $("#login-form").addEventListener("submit", (e) => {
        e.preventDefault();
        const user = $("#login-username").value;
        api.setCredentials(user, $("#login-password").value);
        start();
    });
    $("#logout").addEventListener("click", () => {
        api.clearCredentials();
        ctx.user = null;
        showLogin("");
    });
    $("#vhost-select").addEventListener("change", (e) => {
        if (e.target.value) sessionStorage.setItem(VHOST_KEY, e.target.value);
        else sessionStorage.removeItem(VHOST_KEY);
        route();
    });
    $("#flash").addEventListener("click", () => ($("#flash").hidden = true));
    window.addEventListener("hashchange", route);
    document.addEventListener("visibilitychange", () => {
        if (!document.hidden && current) tick();
    });
    if (api.currentUser()) start();
    else showLogin("");
}

init();
