// pages/queues.js: the queues list, paged, sorted and filtered by the
// server (/api/queues[/V] with page, page_size, name, use_regex, sort,
// sort_reverse, and columns so that a page of 500 queues stays small), and
// the form that declares a queue.

import * as api from "../api.js";
import { $, html, setHtml, enc, fmtNum, fmtRate, formData, parseJsonObject } from "../dom.js";
import { PagedTable } from "../table.js";
import { section, features, queueHref, vhostSelect, vhostPath } from "../widgets.js";

const API_COLUMNS = [
    "name",
    "vhost",
    "type",
    "state",
    "durable",
    "auto_delete",
    "exclusive",
    "arguments",
    "policy",
    "consumers",
    "messages_ready",
    "messages_unacknowledged",
    "messages",
    "message_stats.publish_details.rate",
    "message_stats.deliver_get_details.rate",
    "message_stats.ack_details.rate",
].join(",");

function rate(q, key) {
    const ms = q.message_stats || {};
    return fmtRate((ms[`${key}_details`] || {}).rate || 0);
}

export default function queuesPage(main, ctx) {
    setHtml(
        main,
        html`<h1>Queues</h1>
            ${section("All queues", html`<div id="list"></div>`)}
            ${section(
                "Add a new queue",
                html`<form class="grid" id="add-queue">
                    <label>Virtual host</label>${vhostSelect(ctx)}
                    <label>Name</label><input name="name" required />
                    <label>Durability</label>
                    <select name="durable">
                        <option value="true">Durable</option>
                        <option value="false">Transient</option>
                    </select>
                    <label>Auto delete</label><label class="check"><input type="checkbox" name="auto_delete" /> yes</label>
                    <label class="top">Arguments</label>
                    <div>
                        <textarea name="arguments" rows="2" placeholder='{"x-message-ttl": 60000, "x-dead-letter-exchange": "dlx"}'></textarea>
                        <div class="hint">
                            A JSON object: x-message-ttl, x-expires, x-max-length, x-max-length-bytes, x-overflow,
                            x-dead-letter-exchange, x-dead-letter-routing-key, x-max-priority, x-single-active-consumer
                        </div>
                    </div>
                    <div class="wide actions"><button type="submit" class="primary">Add queue</button></div>
                </form>`,
            )}`,
    );
    const table = new PagedTable($("#list", main), {
        id: "queues",
        noun: "queue",
        path: () => vhostPath("/queues", ctx),
        apiColumns: API_COLUMNS,
        empty: "No queues.",
        columns: [
            !ctx.vhost && { label: "Virtual host", sort: "vhost", render: (q) => q.vhost },
            { label: "Name", sort: "name", render: (q) => html`<a href="${queueHref(q.vhost, q.name)}">${q.name}</a>` },
            { label: "Type", sort: "type", render: (q) => q.type },
            { label: "Features", render: features },
            { label: "Policy", sort: "policy", render: (q) => q.policy || "" },
            { label: "State", sort: "state", render: (q) => html`<span class="state-${q.state === "running" ? "running" : "bad"}">${q.state}</span>` },
            { label: "Consumers", sort: "consumers", cls: "num", render: (q) => fmtNum(q.consumers) },
            { label: "Ready", sort: "messages_ready", cls: "num", render: (q) => fmtNum(q.messages_ready) },
            { label: "Unacked", sort: "messages_unacknowledged", cls: "num", render: (q) => fmtNum(q.messages_unacknowledged) },
            { label: "Total", sort: "messages", cls: "num", render: (q) => fmtNum(q.messages) },
            { label: "Incoming", sort: "message_stats.publish_details.rate", cls: "num", render: (q) => rate(q, "publish") },
            { label: "Deliver / get", sort: "message_stats.deliver_get_details.rate", cls: "num", render: (q) => rate(q, "deliver_get") },
            { label: "Ack", sort: "message_stats.ack_details.rate", cls: "num", render: (q) => rate(q, "ack") },
        ].filter(Boolean),
    });
    const form = $("#add-queue", main);
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(form);
            await api.put(`/queues/${enc(f.vhost)}/${enc(f.name)}`, {
                durable: f.durable === "true",
                auto_delete: f.auto_delete,
                arguments: parseJsonObject(f.arguments, "Arguments"),
            });
            form.elements.name.value = "";
        }, "Queue declared.");
    });
    return { refresh: () => table.refresh() };
}
