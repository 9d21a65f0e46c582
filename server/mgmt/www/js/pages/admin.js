// pages/admin.js: the Admin tab: users, virtual hosts, permissions
// (administrators) and policies (policymakers and administrators). Each
// list is paged by the server; each has a form that adds an entry or, for
// an existing name, updates it (the API's PUT does both), and a delete
// button per row. "Edit" on a row copies it into the form.

import * as api from "../api.js";
import { $, html, setHtml, enc, fmtNum, fmtRate, formData, parseJsonObject } from "../dom.js";
import { PagedTable } from "../table.js";
import { section, tags, vhostSelect, vhostPath, jsonCell } from "../widgets.js";

const SUBPAGES = [
    ["#/users", "Users", "administrator"],
    ["#/vhosts", "Virtual hosts", "administrator"],
    ["#/permissions", "Permissions", "administrator"],
    ["#/policies", "Policies", "policymaker"],
];

function subnav(ctx, here) {
    return html`<nav class="subnav">
        ${SUBPAGES.filter(([, , tag]) => ctx.is(tag, "administrator")).map(
            ([href, label]) => html`<a href="${href}" class="${href === here ? "active" : ""}">${label}</a>`,
        )}
    </nav>`;
}

function rowButtons(edit) {
    return html`<span class="actions">
        ${edit ? html`<button type="button" class="small" data-action="edit">Edit</button>` : ""}
        <button type="button" class="small danger" data-action="delete">Delete</button>
    </span>`;
}

// Wires the Edit and Delete buttons of a table's rows.
function onRows(main, table, { edit, remove }) {
    main.addEventListener("click", (e) => {
        const b = e.target.closest("button[data-action]");
        const item = b && table.itemOf(b);
        if (!item) return;
        if (b.dataset.action === "edit" && edit) edit(item);
        if (b.dataset.action === "delete") remove(item);
    });
}

// ---- users

export function usersPage(main, ctx) {
    setHtml(
        main,
        html`<h1>Admin</h1>
            ${subnav(ctx, "#/users")} ${section("All users", html`<div id="list"></div>`)}
            ${section(
                "Add or update a user",
                html`<form class="grid" id="user-form">
                    <label>Username</label><input name="name" required autocomplete="off" />
                    <label>Password</label>
                    <div>
                        <input name="password" type="password" autocomplete="new-password" />
                        <span class="hint">empty: keep the current one (a new user gets none)</span>
                    </div>
                    <label>Tags</label>
                    <div>
                        <input name="tags" placeholder="administrator, monitoring" />
                        <div class="actions hint">
                            <span>Set:</span>
                            ${["administrator", "monitoring", "policymaker", "management", ""].map(
                                (t) => html`<button type="button" class="small" data-tag="${t}">${t || "none"}</button>`,
                            )}
                        </div>
                    </div>
                    <div class="wide actions"><button type="submit" class="primary">Add / update user</button></div>
                </form>`,
            )}`,
    );
    const table = new PagedTable($("#list", main), {
        id: "users",
        noun: "user",
        path: () => "/users",
        empty: "No users.",
        columns: [
            { label: "Name", sort: "name", render: (u) => u.name },
            { label: "Tags", render: (u) => tags(u.tags) },
            { label: "Password", render: (u) => (u.password_hash ? "set" : html`<i>none</i>`) },
            { label: "", render: () => rowButtons(true) },
        ],
    });
    const form = $("#user-form", main);
    form.addEventListener("click", (e) => {
        const b = e.target.closest("button[data-tag]");
        if (b) form.elements.tags.value = b.dataset.tag;
    });
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(form);
            const body = { tags: f.tags.split(",").map((t) => t.trim()).filter(Boolean).join(",") };
            if (f.password) body.password = f.password;
            await api.put(`/users/${enc(f.name)}`, body);
            form.reset();
        }, "User saved.");
    });
    onRows(main, table, {
        edit(u) {
            form.elements.name.value = u.name;
            form.elements.tags.value = (Array.isArray(u.tags) ? u.tags : [u.tags]).join(", ");
            form.elements.password.focus();
        },
        remove(u) {
            if (confirm(`Delete user ${u.name}?`)) ctx.act(() => api.del(`/users/${enc(u.name)}`), "User deleted.");
        },
    });
    return { refresh: () => table.refresh() };
}

// ---- virtual hosts

export function vhostsPage(main, ctx) {
    setHtml(
        main,
        html`<h1>Admin</h1>
            ${subnav(ctx, "#/vhosts")} ${section("All virtual hosts", html`<div id="list"></div>`)}
            ${section(
                "Add a new virtual host",
                html`<form class="grid" id="vhost-form">
                    <label>Name</label><input name="name" required />
                    <label>Description</label><input name="description" />
                    <label>Tags</label><input name="tags" placeholder="production, eu" />
                    <div class="wide actions"><button type="submit" class="primary">Add virtual host</button></div>
                </form>`,
            )}`,
    );
    const ms = (v, k) => fmtRate(((v.message_stats || {})[`${k}_details`] || {}).rate || 0);
    const table = new PagedTable($("#list", main), {
        id: "vhosts",
        noun: "virtual host",
        path: () => "/vhosts",
        empty: "No virtual hosts.",
        columns: [
            { label: "Name", sort: "name", render: (v) => v.name },
            { label: "Description", render: (v) => v.description || "" },
            { label: "Tags", render: (v) => tags(v.tags) },
            { label: "Ready", sort: "messages_ready", cls: "num", render: (v) => fmtNum(v.messages_ready) },
            { label: "Unacked", sort: "messages_unacknowledged", cls: "num", render: (v) => fmtNum(v.messages_unacknowledged) },
            { label: "Total", sort: "messages", cls: "num", render: (v) => fmtNum(v.messages) },
            { label: "Publish", cls: "num", render: (v) => ms(v, "publish") },
            { label: "Deliver / get", cls: "num", render: (v) => ms(v, "deliver_get") },
            ctx.isAdmin && { label: "", render: () => rowButtons(false) },
        ].filter(Boolean),
    });
    const form = $("#vhost-form", main);
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(form);
            await api.put(`/vhosts/${enc(f.name)}`, { description: f.description, tags: f.tags });
            form.reset();
            await ctx.refreshVhosts();
        }, "Virtual host added.");
    });
    onRows(main, table, {
        remove(v) {
            if (!confirm(`Delete virtual host ${v.name} and everything in it?`)) return;
            ctx.act(async () => {
                await api.del(`/vhosts/${enc(v.name)}`);
                await ctx.refreshVhosts();
            }, "Virtual host deleted.");
        },
    });
    return { refresh: () => table.refresh() };
}

// ---- permissions

export function permissionsPage(main, ctx) {
    setHtml(
        main,
        html`<h1>Admin</h1>
            ${subnav(ctx, "#/permissions")} ${section("All permissions", html`<div id="list"></div>`)}
            ${section(
                "Set permission",
                html`<form class="grid" id="perm-form">
                    <label>User</label><input name="user" required autocomplete="off" />
                    <label>Virtual host</label>${vhostSelect(ctx)}
                    <label>Configure regexp</label><input name="configure" value=".*" />
                    <label>Write regexp</label><input name="write" value=".*" />
                    <label>Read regexp</label><input name="read" value=".*" />
                    <div class="wide actions"><button type="submit" class="primary">Set permission</button></div>
                </form>`,
            )}`,
    );
    const re = (s) => html`<span class="mono">${s}</span>`;
    const table = new PagedTable($("#list", main), {
        id: "permissions",
        noun: "permission",
        filter: false,
        defaultSort: "user",
        path: () => (ctx.vhost ? `/vhosts/${enc(ctx.vhost)}/permissions` : "/permissions"),
        empty: "No permissions.",
        columns: [
            { label: "User", sort: "user", render: (p) => p.user },
            { label: "Virtual host", sort: "vhost", render: (p) => p.vhost },
            { label: "Configure", render: (p) => re(p.configure) },
            { label: "Write", render: (p) => re(p.write) },
            { label: "Read", render: (p) => re(p.read) },
            { label: "", render: () => rowButtons(true) },
        ],
    });
    const form = $("#perm-form", main);
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(form);
            await api.put(`/permissions/${enc(f.vhost)}/${enc(f.user)}`, { configure: f.configure, write: f.write, read: f.read });
        }, "Permission set.");
    });
    onRows(main, table, {
        edit(p) {
            for (const k of ["user", "vhost", "configure", "write", "read"]) form.elements[k].value = p[k];
        },
        remove(p) {
            if (confirm(`Clear the permissions of ${p.user} in ${p.vhost}?`))
                ctx.act(() => api.del(`/permissions/${enc(p.vhost)}/${enc(p.user)}`), "Permission cleared.");
        },
    });
    return { refresh: () => table.refresh() };
}

// ---- policies

export function policiesPage(main, ctx) {
    const canEdit = ctx.is("administrator", "policymaker");
    setHtml(
        main,
        html`<h1>Admin</h1>
            ${subnav(ctx, "#/policies")} ${section("User policies", html`<div id="list"></div>`)}
            ${canEdit
                ? section(
                      "Add or update a policy",
                      html`<form class="grid" id="policy-form">
                          <label>Virtual host</label>${vhostSelect(ctx)}
                          <label>Name</label><input name="name" required />
                          <label>Pattern</label><input name="pattern" required placeholder="^amq." />
                          <label>Apply to</label>
                          <select name="apply-to">
                              <option value="all">Exchanges and queues</option>
                              <option value="queues">Queues</option>
                              <option value="exchanges">Exchanges</option>
                          </select>
                          <label>Priority</label><input name="priority" type="number" value="0" />
                          <label class="top">Definition</label>
                          <div>
                              <textarea name="definition" rows="3" required placeholder='{"max-length": 1000, "dead-letter-exchange": "dlx"}'></textarea>
                              <div class="hint">
                                  A JSON object: message-ttl, expires, max-length, max-length-bytes, overflow, dead-letter-exchange,
                                  dead-letter-routing-key
                              </div>
                          </div>
                          <div class="wide actions"><button type="submit" class="primary">Add / update policy</button></div>
                      </form>`,
                  )
                : ""}`,
    );
    const table = new PagedTable($("#list", main), {
        id: "policies",
        noun: "policy",
        path: () => vhostPath("/policies", ctx),
        empty: "No policies.",
        columns: [
            !ctx.vhost && { label: "Virtual host", sort: "vhost", render: (p) => p.vhost },
            { label: "Name", sort: "name", render: (p) => p.name },
            { label: "Pattern", sort: "pattern", render: (p) => html`<span class="mono">${p.pattern}</span>` },
            { label: "Apply to", sort: "apply-to", render: (p) => p["apply-to"] },
            { label: "Definition", render: (p) => jsonCell(p.definition) },
            { label: "Priority", sort: "priority", cls: "num", render: (p) => fmtNum(p.priority) },
            canEdit && { label: "", render: () => rowButtons(true) },
        ].filter(Boolean),
    });
    const form = $("#policy-form", main);
    if (form) {
        form.addEventListener("submit", (e) => {
            e.preventDefault();
            ctx.act(async () => {
                const f = formData(form);
                await api.put(`/policies/${enc(f.vhost)}/${enc(f.name)}`, {
                    pattern: f.pattern,
                    "apply-to": f["apply-to"],
                    priority: Number(f.priority) || 0,
                    definition: parseJsonObject(f.definition, "Definition"),
                });
            }, "Policy saved.");
        });
    }
    onRows(main, table, {
        edit(p) {
            form.elements.vhost.value = p.vhost;
            form.elements.name.value = p.name;
            form.elements.pattern.value = p.pattern;
            form.elements["apply-to"].value = p["apply-to"];
            form.elements.priority.value = p.priority;
            form.elements.definition.value = JSON.stringify(p.definition);
        },
        remove(p) {
            if (confirm(`Delete policy ${p.name} in ${p.vhost}?`))
                ctx.act(() => api.del(`/policies/${enc(p.vhost)}/${enc(p.name)}`), "Policy deleted.");
        },
    });
    return { refresh: () => table.refresh() };
}
