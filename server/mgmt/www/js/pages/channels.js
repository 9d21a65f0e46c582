// pages/channels.js: the open channels (/api/channels, or
// /api/vhosts/V/channels), paged by the server: mode (confirm,
// transactional), consumers, prefetch, unacked and unconfirmed counts.

import { html, setHtml, enc, fmtNum } from "../dom.js";
import { PagedTable } from "../table.js";

function mode(ch) {
    const m = [];
    if (ch.confirm) m.push(html`<span class="tag" title="confirm">C</span>`);
    if (ch.transactional) m.push(html`<span class="tag" title="transactional">T</span>`);
    return m;
}

export default function channelsPage(main, ctx) {
    setHtml(main, html`<h1>Channels</h1><div id="list"></div>`);
    const all = !ctx.vhost;
    const table = new PagedTable(main.querySelector("#list"), {
        id: "channels",
        noun: "channel",
        path: () => (all ? "/channels" : `/vhosts/${enc(ctx.vhost)}/channels`),
        empty: "No channels.",
        columns: [
            all && { label: "Virtual host", sort: "vhost", render: (c) => c.vhost },
            { label: "Channel", sort: "name", render: (c) => html`<span class="mono nowrap">${c.name}</span>` },
            { label: "User", sort: "user", render: (c) => c.user },
            { label: "Mode", render: mode, title: "C: confirm, T: transactional" },
            { label: "State", sort: "state", render: (c) => c.state },
            { label: "Consumers", sort: "consumer_count", cls: "num", render: (c) => fmtNum(c.consumer_count) },
            { label: "Prefetch", sort: "prefetch_count", cls: "num", render: (c) => fmtNum(c.prefetch_count) },
            { label: "Unacked", sort: "messages_unacknowledged", cls: "num", render: (c) => fmtNum(c.messages_unacknowledged) },
            { label: "Unconfirmed", sort: "messages_unconfirmed", cls: "num", render: (c) => fmtNum(c.messages_unconfirmed) },
        ].filter(Boolean),
    });
    return { refresh: () => table.refresh() };
}
