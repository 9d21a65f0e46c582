// pages/overview.js: the node at a glance, as RabbitMQ's Overview tab:
// queued messages and message rates as live charts (queue_totals and
// message_stats of /api/overview), object totals, the node's resources
// (/api/nodes, for monitoring and administrator users), listeners, and
// definitions export and import (administrators).

import * as api from "../api.js";
import { $, html, setHtml, enc, fmtNum, fmtBytes, fmtDuration } from "../dom.js";
import { Chart, historyFor } from "../chart.js";
import { section, facts } from "../widgets.js";

const QUEUED = [
    { key: "ready", label: "Ready" },
    { key: "unacked", label: "Unacked" },
    { key: "total", label: "Total" },
];
const RATES = [
    { key: "publish", label: "Publish" },
    { key: "deliver_get", label: "Deliver / get" },
    { key: "ack", label: "Consumer ack" },
    { key: "redeliver", label: "Redelivered" },
    { key: "expired", label: "Expired" },
];

const COUNTS = [
    ["connections", "Connections", "#/connections"],
    ["channels", "Channels", "#/channels"],
    ["exchanges", "Exchanges", "#/exchanges"],
    ["queues", "Queues", "#/queues"],
    ["consumers", "Consumers", null],
];

export function rateOf(stats, key) {
    const d = stats && stats[`${key}_details`];
    return d ? d.rate : 0;
}

export function nodeRows(n) {
    return [
        ["Uptime", fmtDuration(n.uptime)],
        [
            "Memory",
            html`<meter min="0" max="${n.mem_limit}" high="${n.mem_limit * 0.9}" value="${n.mem_used}"></meter>
                ${fmtBytes(n.mem_used)} of ${fmtBytes(n.mem_limit)} high watermark ${n.mem_alarm ? html`<b class="state-bad">alarm</b>` : ""}`,
        ],
        [
            "Disk free",
            html`${fmtBytes(n.disk_free)} (limit ${fmtBytes(n.disk_free_limit)})
            ${n.disk_free_alarm ? html`<b class="state-bad">alarm</b>` : ""}`,
        ],
        ["File descriptors", `${fmtNum(n.fd_used)} of ${fmtNum(n.fd_total)}`],
        ["Sockets", `${fmtNum(n.sockets_used)} of ${fmtNum(n.sockets_total)}`],
        ["Processors", fmtNum(n.processors)],
    ];
}

export default function overviewPage(main, ctx) {
    const monitor = ctx.is("administrator", "monitoring");
    setHtml(
        main,
        html`<h1>Overview</h1>
            ${section("Totals", html`<div class="charts"><div id="chart-queued"></div><div id="chart-rates"></div></div>`)}
            ${section("Global counts", html`<div class="tiles" id="counts"></div>`)}
            ${monitor ? section("Node", html`<div id="node"></div>`) : ""}
            ${section("Ports and contexts", html`<div id="listeners"></div>`, { open: false })}
            ${ctx.isAdmin
                ? html`<div class="forms">
                      ${section(
                          "Export definitions",
                          html`<p>Users, vhosts, permissions, policies, exchanges, queues and bindings as one JSON file
                                  (RabbitMQ's format)${ctx.vhost ? html`, of vhost <b>${ctx.vhost}</b> only` : ""}.</p>
                              <button type="button" class="primary" id="export">Download definitions</button>`,
                      )}
                      ${section(
                          "Import definitions",
                          html`<form id="import-form" class="actions">
                              <input type="file" name="file" accept=".json,application/json" required />
                              <button type="submit" class="primary">Upload definitions</button>
                          </form>`,
                      )}
                  </div>`
                : ""}`,
    );
    const queued = new Chart($("#chart-queued", main), "Queued messages", QUEUED);
    const rates = new Chart($("#chart-rates", main), "Message rates", RATES, { rate: true });
    const hq = historyFor("overview.queued");
    const hr = historyFor("overview.rates");
    queued.update(hq);
    rates.update(hr);

    if (ctx.isAdmin) {
        $("#export", main).addEventListener("click", () =>
            ctx.act(async () => {
                const path = ctx.vhost ? `/definitions/${enc(ctx.vhost)}` : "/definitions";
                const defs = await api.get(path);
                const blob = new Blob([JSON.stringify(defs, null, 2)], { type: "application/json" });
                const a = document.createElement("a");
                const day = new Date().toISOString().slice(0, 10);
                a.href = URL.createObjectURL(blob);
                a.download = `${ctx.overview.cluster_name}_${day}.json`.replace(/[^A-Za-z0-9_.@-]/g, "_");
                document.body.append(a);
                a.click();
                a.remove();
                setTimeout(() => URL.revokeObjectURL(a.href), 10000);
            }, "Definitions exported."),
        );
        $("#import-form", main).addEventListener("submit", (e) => {
            e.preventDefault();
            const file = e.target.elements.file.files[0];
            if (!file) return;
            ctx.act(async () => {
                let defs;
                try {
                    defs = JSON.parse(await file.text());
                } catch (err) {
                    throw new Error(`${file.name} is not JSON: ${err.message}`);
                }
                const path = ctx.vhost ? `/definitions/${enc(ctx.vhost)}` : "/definitions";
                await api.post(path, defs);
                await ctx.refreshVhosts();
                e.target.reset();
            }, "Definitions imported.");
        });
    }

    async function refresh() {
        const [o, nodes] = await Promise.all([api.get("/overview"), monitor ? api.get("/nodes") : null]);
        ctx.overview = o;
        const qt = o.queue_totals || {};
        const ms = o.message_stats || {};
        hq.push({ ready: qt.messages_ready || 0, unacked: qt.messages_unacknowledged || 0, total: qt.messages || 0 });
        hr.push(Object.fromEntries(RATES.map((s) => [s.key, rateOf(ms, s.key)])));
        queued.update(hq);
        rates.update(hr);
        const t = o.object_totals || {};
        setHtml(
            $("#counts", main),
            COUNTS.map(
                ([k, label, href]) =>
                    html`<div class="tile" data-count="${k}">
                        <div class="label">${href ? html`<a href="${href}">${label}</a>` : label}</div>
                        <div class="value">${fmtNum(t[k] || 0)}</div>
                    </div>`,
            ),
        );
        if (nodes) {
            setHtml(
                $("#node", main),
                nodes.map(
                    (n) => html`<h3><a href="#/nodes">${n.name}</a> <span class="state-running">${n.running ? "running" : "stopped"}</span></h3>
                        ${facts(nodeRows(n))}`,
                ),
            );
        }
        setHtml(
            $("#listeners", main),
            html`<table class="list">
                <thead>
                    <tr><th>Protocol</th><th>Bound to</th><th class="num">Port</th></tr>
                </thead>
                <tbody>
                    ${(o.listeners || []).map(
                        (l) => html`<tr><td>${l.protocol}</td><td>${l.ip_address}</td><td class="num">${l.port}</td></tr>`,
                    )}
                </tbody>
            </table>`,
        );
    }

    return {
        refresh,
        destroy() {
            queued.destroy();
            rates.destroy();
        },
    };
}
