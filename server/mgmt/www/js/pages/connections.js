// pages/connections.js: the AMQP connections (/api/connections, or
// /api/vhosts/V/connections for the chosen vhost), paged by the server,
// with each connection's channels, traffic rates, client, and a button
// that closes it (DELETE with an X-Reason header, as RabbitMQ's UI).

import * as api from "../api.js";
import { html, setHtml, enc, fmtNum, fmtRate, fmtBytes, fmtTime } from "../dom.js";
import { PagedTable } from "../table.js";

export default function connectionsPage(main, ctx) {
    setHtml(main, html`<h1>Connections</h1><div id="list"></div>`);
    const all = !ctx.vhost;
    const table = new PagedTable(main.querySelector("#list"), {
        id: "connections",
        noun: "connection",
        path: () => (all ? "/connections" : `/vhosts/${enc(ctx.vhost)}/connections`),
        empty: "No connections.",
        columns: [
            all && { label: "Virtual host", sort: "vhost", render: (c) => c.vhost },
            { label: "Name", sort: "name", render: (c) => html`<span class="mono nowrap">${c.name}</span>` },
            { label: "User", sort: "user", render: (c) => c.user },
            { label: "State", sort: "state", render: (c) => html`<span class="state-${c.state === "running" ? "running" : "bad"}">${c.state}</span>` },
            { label: "Protocol", sort: "protocol", cls: "nowrap", render: (c) => c.protocol },
            {
                label: "Client",
                render: (c) => {
                    const p = c.client_properties || {};
                    return [p.product, p.version].filter((x) => typeof x === "string").join(" ");
                },
            },
            { label: "Channels", sort: "channels", cls: "num", render: (c) => fmtNum(c.channels) },
            {
                label: "From client",
                sort: "recv_oct_details.rate",
                cls: "num",
                render: (c) => html`${fmtRate((c.recv_oct_details || {}).rate || 0)}<br /><small>${fmtBytes(c.recv_oct)}</small>`,
            },
            {
                label: "To client",
                sort: "send_oct_details.rate",
                cls: "num",
                render: (c) => html`${fmtRate((c.send_oct_details || {}).rate || 0)}<br /><small>${fmtBytes(c.send_oct)}</small>`,
            },
            { label: "Connected", sort: "connected_at", cls: "nowrap", render: (c) => (c.connected_at ? fmtTime(c.connected_at) : "") },
            { label: "", render: () => html`<button type="button" class="small danger" data-action="close">Close</button>` },
        ].filter(Boolean),
    });
    main.addEventListener("click", (e) => {
        const b = e.target.closest("button[data-action=close]");
        const c = b && table.itemOf(b);
        if (!c || !confirm(`Close connection ${c.name}?`)) return;
        ctx.act(
            () => api.del(`/connections/${enc(c.name)}`, { "X-Reason": `Closed via management plugin by ${ctx.user.name}` }),
            "Connection closed.",
        );
    });
    return { refresh: () => table.refresh() };
}
