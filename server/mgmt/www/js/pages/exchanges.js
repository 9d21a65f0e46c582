// pages/exchanges.js: the exchanges list (/api/exchanges[/V], paged by the
// server) with the form that declares one, and an exchange's page: its
// details, bindings from and to it, add binding, publish, delete.

import * as api from "../api.js";
import { $, html, setHtml, enc, formData, parseJsonObject } from "../dom.js";
import { PagedTable } from "../table.js";
import { section, facts, features, exchangeHref, exchangeLabel, vhostSelect, vhostPath, jsonCell } from "../widgets.js";
import { publishForm, bindPublish, bindingRows, unbind, bindForm, bindBind } from "../forms.js";

export function exchangesPage(main, ctx) {
    const types = (ctx.overview.exchange_types || []).map((t) => t.name);
    setHtml(
        main,
        html`<h1>Exchanges</h1>
            ${section("All exchanges", html`<div id="list"></div>`)}
            ${section(
                "Add a new exchange",
                html`<form class="grid" id="add-exchange">
                    <label>Virtual host</label>${vhostSelect(ctx)}
                    <label>Name</label><input name="name" required />
                    <label>Type</label>
                    <select name="type">
                        ${types.map((t) => html`<option>${t}</option>`)}
                    </select>
                    <label>Durability</label>
                    <select name="durable">
                        <option value="true">Durable</option>
                        <option value="false">Transient</option>
                    </select>
                    <label>Auto delete</label><label class="check"><input type="checkbox" name="auto_delete" /> yes</label>
                    <label>Internal</label><label class="check"><input type="checkbox" name="internal" /> yes</label>
                    <label class="top">Arguments</label>
                    <div>
                        <textarea name="arguments" rows="2" placeholder='{"alternate-exchange": "my-ae"}'></textarea>
                        <div class="hint">A JSON object.</div>
                    </div>
                    <div class="wide actions"><button type="submit" class="primary">Add exchange</button></div>
                </form>`,
                { open: false },
            )}`,
    );
    const table = new PagedTable($("#list", main), {
        id: "exchanges",
        noun: "exchange",
        path: () => vhostPath("/exchanges", ctx),
        empty: "No exchanges.",
        columns: [
            !ctx.vhost && { label: "Virtual host", sort: "vhost", render: (x) => x.vhost },
            { label: "Name", sort: "name", render: (x) => html`<a href="${exchangeHref(x.vhost, x.name)}">${exchangeLabel(x.name)}</a>` },
            { label: "Type", sort: "type", render: (x) => x.type },
            { label: "Features", render: features },
            { label: "Policy", sort: "policy", render: (x) => x.policy || "" },
        ].filter(Boolean),
    });
    const form = $("#add-exchange", main);
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(form);
            await api.put(`/exchanges/${enc(f.vhost)}/${enc(f.name)}`, {
                type: f.type,
                durable: f.durable === "true",
                auto_delete: f.auto_delete,
                internal: f.internal,
                arguments: parseJsonObject(f.arguments, "Arguments"),
            });
            form.elements.name.value = "";
        }, "Exchange declared.");
    });
    return { refresh: () => table.refresh() };
}

export function exchangePage(main, ctx, [vhost, name]) {
    const xname = name === "amq.default" ? "" : name;
    const path = `/exchanges/${enc(vhost)}/${enc(name)}`;
    const builtin = xname === "" || xname.startsWith("amq.");
    setHtml(
        main,
        html`<h1>Exchange: ${exchangeLabel(xname)} <small>in virtual host ${vhost}</small></h1>
            ${section("Details", html`<div id="details"></div>`)}
            ${section("Bindings from this exchange", html`<div id="src"></div>`)}
            ${section("Bindings to this exchange", html`<div id="dst"></div>`, { open: false })}
            <div class="forms">
                ${xname !== "" ? section("Add binding from this exchange", bindForm({ toQueue: false }), { open: false }) : ""}
                ${section("Publish message", publishForm({ withRoutingKey: true }), { open: false })}
            </div>
            ${builtin
                ? ""
                : section("Delete this exchange", html`<button type="button" class="danger" id="delete">Delete</button>`, { open: false })}`,
    );
    let src = [];
    let dst = [];
    const bind = $("form[data-form=bind]", main);
    if (bind) bindBind(bind, ctx, vhost, xname, false);
    bindPublish($("form[data-form=publish]", main), ctx, vhost, xname);
    main.addEventListener("click", (e) => {
        const b = e.target.closest("button[data-unbind]");
        if (!b) return;
        const list = b.closest("#src") ? src : dst;
        unbind(ctx, list[Number(b.dataset.unbind)]);
    });
    const del = $("#delete", main);
    if (del) {
        del.addEventListener("click", async () => {
            if (!confirm(`Delete exchange ${xname}?`)) return;
            const ok = await ctx.act(() => api.del(path).then(() => true), "Exchange deleted.", { refresh: false });
            if (ok) ctx.go("#/exchanges");
        });
    }

    let gone = false;
    async function refresh() {
        if (gone) return;
        let x;
        try {
            x = await api.get(path);
        } catch (e) {
            if (e instanceof api.ApiError && e.status === 404) {
                gone = true;
                setHtml(main, html`<h1>Exchange not found</h1><p><a href="#/exchanges">All exchanges</a></p>`);
                return;
            }
            throw e;
        }
        [src, dst] = await Promise.all([api.get(`${path}/bindings/source`), api.get(`${path}/bindings/destination`)]);
        setHtml(
            $("#details", main),
            facts([
                ["Type", x.type],
                ["Features", features(x)],
                ["Arguments", jsonCell(x.arguments)],
                ["Policy", x.policy || ""],
            ]),
        );
        setHtml($("#src", main), bindingRows(src, "source"));
        setHtml($("#dst", main), bindingRows(dst, "destination"));
    }
    return { refresh };
}
