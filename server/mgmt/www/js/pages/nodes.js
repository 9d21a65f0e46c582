// pages/nodes.js: the node (/api/nodes, monitoring and administrator
// users): resources against their limits and alarms, and what it runs
// (version, listeners, plugins, exchange types, auth mechanisms, files).

import * as api from "../api.js";
import { html, setHtml } from "../dom.js";
import { section, facts, tags } from "../widgets.js";
import { nodeRows } from "./overview.js";

export default function nodesPage(main, ctx) {
    setHtml(main, html`<h1>Nodes</h1><div id="nodes"></div>`);
    async function refresh() {
        const [nodes, o] = await Promise.all([api.get("/nodes"), api.get("/overview")]);
        setHtml(
            main.querySelector("#nodes"),
            nodes.map(
                (n) => html`${section(
                    html`Node ${n.name} <span class="state-running">${n.running ? "running" : "stopped"}</span>`,
                    html`<div class="columns">
                        ${facts(nodeRows(n))}
                        ${facts([
                            ["Product", `${o.product_name} ${o.product_version}`],
                            ["RabbitMQ API version", o.rabbitmq_version],
                            ["Runtime", o.erlang_full_version],
                            ["Type", n.type],
                            ["OS pid", n.os_pid],
                            ["Rates mode", n.rates_mode],
                            ["Data directory", html`<span class="mono">${n.db_dir}</span>`],
                            ["Config files", (n.config_files || []).join(", ")],
                            ["Log files", (n.log_files || []).join(", ")],
                        ])}
                        ${facts([
                            ["Plugins", tags(n.enabled_plugins)],
                            ["Exchange types", tags((n.exchange_types || []).map((t) => t.name))],
                            ["Auth mechanisms", tags((n.auth_mechanisms || []).map((m) => m.name))],
                            [
                                "Listeners",
                                (o.listeners || []).filter((l) => l.node === n.name).map((l) => html`<div>${l.protocol} ${l.ip_address}:${l.port}</div>`),
                            ],
                        ])}
                    </div>`,
                )}`,
            ),
        );
    }
    return { refresh };
}
