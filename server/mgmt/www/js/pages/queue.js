// pages/queue.js: one queue (/api/queues/V/Q): queued messages and message
// rates as live charts, its figures, consumers and bindings, and the
// forms: add binding, publish (to the default exchange, routed by the
// queue's name), get messages, purge, delete.

import * as api from "../api.js";
import { $, html, setHtml, enc, fmtNum, fmtBytes, fmtBool, formData } from "../dom.js";
import { Chart, historyFor } from "../chart.js";
import { section, facts, features, jsonCell } from "../widgets.js";
import { publishForm, bindPublish, bindingRows, unbind, bindForm, bindBind } from "../forms.js";
import { rateOf } from "./overview.js";

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
];

const ACK_MODES = [
    ["ack_requeue_true", "Nack message requeue true"],
    ["ack_requeue_false", "Automatic ack"],
    ["reject_requeue_true", "Reject requeue true"],
    ["reject_requeue_false", "Reject requeue false"],
];

function consumersTable(list) {
    if (!list.length) return html`<p class="list-message">No consumers.</p>`;
    return html`<table class="list">
        <thead>
            <tr><th>Channel</th><th>Consumer tag</th><th>Ack required</th><th>Exclusive</th><th class="num">Prefetch</th><th>Active</th><th>Arguments</th></tr>
        </thead>
        <tbody>
            ${list.map(
                (c) => html`<tr>
                    <td class="mono">${(c.channel_details || {}).name}</td>
                    <td class="mono">${c.consumer_tag}</td>
                    <td>${fmtBool(c.ack_required)}</td>
                    <td>${fmtBool(c.exclusive)}</td>
                    <td class="num">${fmtNum(c.prefetch_count)}</td>
                    <td>${c.activity_status || fmtBool(c.active)}</td>
                    <td>${jsonCell(c.arguments)}</td>
                </tr>`,
            )}
        </tbody>
    </table>`;
}

function messagesView(msgs) {
    if (!msgs.length) return html`<p class="list-message">Queue is empty.</p>`;
    return msgs.map(
        (m, i) => html`<div class="message" data-message="${i}">
            <h3>Message ${i + 1}</h3>
            <p>The server reported ${fmtNum(m.message_count)} messages remaining.</p>
            ${facts([
                ["Exchange", m.exchange === "" ? html`<i>(AMQP default)</i>` : m.exchange],
                ["Routing key", m.routing_key],
                ["Redelivered", fmtBool(m.redelivered)],
                ["Properties", jsonCell(m.properties)],
                ["Payload", html`${fmtNum(m.payload_bytes)} bytes, encoding: ${m.payload_encoding}`],
            ])}
            <pre class="payload">${m.payload}</pre>
        </div>`,
    );
}

export default function queuePage(main, ctx, [vhost, name]) {
    const path = `/queues/${enc(vhost)}/${enc(name)}`;
    setHtml(
        main,
        html`<h1>Queue: ${name} <small>in virtual host ${vhost}</small></h1>
            ${section(
                "Overview",
                html`<div class="charts"><div id="chart-queued"></div><div id="chart-rates"></div></div>
                    <div class="columns" id="details"></div>`,
            )}
            ${section("Consumers", html`<div id="consumers"></div>`)}
            ${section("Bindings", html`<div id="bindings"></div><h3 class="sub">Add binding to this queue</h3>${bindForm({ toQueue: true })}`)}
            <div class="forms">
                ${section("Publish message", publishForm({ withRoutingKey: false }), { id: "publish" })}
                ${section(
                    "Get messages",
                    html`<p class="hint">Getting messages is a destructive action: with requeue, they come back marked redelivered.</p>
                        <form class="grid" id="get-form">
                            <label>Ack mode</label>
                            <select name="ackmode">
                                ${ACK_MODES.map(([v, t]) => html`<option value="${v}">${t}</option>`)}
                            </select>
                            <label>Encoding</label>
                            <select name="encoding">
                                <option value="auto">Auto string / base64</option>
                                <option value="base64">base64</option>
                            </select>
                            <label>Messages</label><input name="count" type="number" min="1" value="1" />
                            <div class="wide actions"><button type="submit" class="primary">Get message(s)</button></div>
                        </form>
                        <div id="got"></div>`,
                    { id: "get" },
                )}
            </div>
            <div class="forms">
                ${section("Purge", html`<button type="button" class="danger" id="purge">Purge messages</button>`, { open: false, id: "purge-section" })}
                ${section("Delete", html`<button type="button" class="danger" id="delete">Delete queue</button>`, { open: false, id: "delete-section" })}
            </div>`,
    );
    const queued = new Chart($("#chart-queued", main), "Queued messages", QUEUED);
    const rates = new Chart($("#chart-rates", main), "Message rates", RATES, { rate: true });
    const hq = historyFor(`queue.queued ${vhost}|${name}`);
    const hr = historyFor(`queue.rates ${vhost}|${name}`);
    queued.update(hq);
    rates.update(hr);
    let bindings = [];
    let gone = false;

    bindBind($("form[data-form=bind]", main), ctx, vhost, name, true);
    bindPublish($("form[data-form=publish]", main), ctx, vhost, "", name);
    main.addEventListener("click", (e) => {
        const b = e.target.closest("button[data-unbind]");
        if (b) unbind(ctx, bindings[Number(b.dataset.unbind)]);
    });
    const getForm = $("#get-form", main);
    getForm.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(getForm);
            const msgs = await api.post(`${path}/get`, {
                count: Number(f.count) || 1,
                ackmode: f.ackmode,
                encoding: f.encoding,
                truncate: 50000,
            });
            setHtml($("#got", main), messagesView(msgs));
        });
    });
    $("#purge", main).addEventListener("click", () => {
        if (confirm(`Purge all messages of queue ${name}?`)) ctx.act(() => api.del(`${path}/contents`), "Queue purged.");
    });
    $("#delete", main).addEventListener("click", async () => {
        if (!confirm(`Delete queue ${name}?`)) return;
        gone = true;
        const ok = await ctx.act(() => api.del(path).then(() => true), "Queue deleted.", { refresh: false });
        if (ok) ctx.go("#/queues");
        else gone = false;
    });

    async function refresh() {
        if (gone) return;
        let q;
        try {
            [q, bindings] = await Promise.all([api.get(path), api.get(`${path}/bindings`)]);
        } catch (e) {
            if (e instanceof api.ApiError && e.status === 404) {
                gone = true;
                setHtml(main, html`<h1>Queue not found</h1><p>Queue ${name} in virtual host ${vhost} does not exist. <a href="#/queues">All queues</a></p>`);
                return;
            }
            throw e;
        }
        const ms = q.message_stats || {};
        hq.push({ ready: q.messages_ready || 0, unacked: q.messages_unacknowledged || 0, total: q.messages || 0 });
        hr.push(Object.fromEntries(RATES.map((s) => [s.key, rateOf(ms, s.key)])));
        queued.update(hq);
        rates.update(hr);
        setHtml(
            $("#details", main),
            html`${facts([
                    ["Features", features(q)],
                    ["Arguments", jsonCell(q.arguments)],
                    ["Policy", q.policy || ""],
                    ["Operator policy", q.operator_policy || ""],
                    ["Effective policy definition", jsonCell(q.effective_policy_definition)],
                    ["Exclusive owner", q.owner_pid_details ? q.owner_pid_details.name : undefined],
                ])}
                ${facts([
                    ["State", html`<span class="state-${q.state === "running" ? "running" : "bad"}">${q.state}</span>`],
                    ["Consumers", fmtNum(q.consumers)],
                    ["Consumer capacity", `${Math.round((q.consumer_capacity || 0) * 100)}%`],
                    ["Messages ready", html`<span id="q-ready">${fmtNum(q.messages_ready)}</span>`],
                    ["Unacked", fmtNum(q.messages_unacknowledged)],
                    ["Total", html`<span id="q-total">${fmtNum(q.messages)}</span>`],
                ])}
                ${facts([
                    ["Message body bytes", fmtBytes(q.message_bytes)],
                    ["Paged out", `${fmtNum(q.messages_paged_out)} (${fmtBytes(q.message_bytes_paged_out)})`],
                    ["Memory", fmtBytes(q.memory)],
                    ["Node", q.node],
                ])}`,
        );
        setHtml($("#consumers", main), consumersTable(q.consumer_details || []));
        setHtml($("#bindings", main), bindingRows(bindings, "destination"));
    }

    return {
        refresh,
        destroy() {
            queued.destroy();
            rates.destroy();
        },
    };
}
