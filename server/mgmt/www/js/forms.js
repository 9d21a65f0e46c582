// forms.js: the forms the exchange and queue pages share: publish a
// message, list a binding table with unbind buttons, add a binding.

import * as api from "./api.js";
import { html, enc, formData, parseJsonObject } from "./dom.js";
import { exchangeHref, exchangeLabel, queueHref, jsonCell } from "./widgets.js";

// The publish form. With routingKey (the queue page), the message goes to
// the default exchange with the queue's name, as in RabbitMQ's UI.
export function publishForm({ withRoutingKey }) {
    return html`<form class="grid" data-form="publish">
        ${withRoutingKey ? html`<label>Routing key</label><input name="routing_key" />` : ""}
        <label>Delivery mode</label>
        <select name="delivery_mode">
            <option value="1">1 - Non-persistent</option>
            <option value="2">2 - Persistent</option>
        </select>
        <label class="top">Headers</label>
        <div><textarea name="headers" rows="2" placeholder='{"x-key": "value"}'></textarea></div>
        <label class="top">Properties</label>
        <div>
            <textarea name="properties" rows="2" placeholder='{"content_type": "text/plain", "priority": 1}'></textarea>
            <div class="hint">JSON: content_type, content_encoding, priority, correlation_id, reply_to, expiration, message_id, timestamp, type, user_id, app_id</div>
        </div>
        <label class="top">Payload</label>
        <textarea name="payload" rows="4"></textarea>
        <label>Payload encoding</label>
        <select name="payload_encoding">
            <option value="string">String (default)</option>
            <option value="base64">Base64</option>
        </select>
        <div class="wide actions"><button type="submit" class="primary">Publish message</button></div>
    </form>`;
}

// Handles the form's submit: POST /api/exchanges/V/X/publish.
export function bindPublish(form, ctx, vhost, exchange, fixedKey) {
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(
            async () => {
                const f = formData(form);
                const properties = parseJsonObject(f.properties, "Properties");
                const headers = parseJsonObject(f.headers, "Headers");
                properties.delivery_mode = Number(f.delivery_mode);
                if (Object.keys(headers).length) properties.headers = headers;
                const x = enc(exchange === "" ? "amq.default" : exchange);
                return api.post(`/exchanges/${enc(vhost)}/${x}/publish`, {
                    properties,
                    routing_key: fixedKey !== undefined ? fixedKey : f.routing_key,
                    payload: f.payload,
                    payload_encoding: f.payload_encoding,
                });
            },
            (res) => (res && res.routed ? "Message published." : "Message published, but not routed."),
        );
    });
}

// A table of bindings; side is "source" (show destinations) or
// "destination" (show sources). Unbind buttons carry the row index.
export function bindingRows(bindings, side) {
    if (!bindings.length) return html`<p class="list-message">No bindings.</p>`;
    const other = (b) =>
        side === "destination"
            ? html`<a href="${exchangeHref(b.vhost, b.source)}">${exchangeLabel(b.source)}</a>`
            : b.destination_type === "queue"
            ? html`<a href="${queueHref(b.vhost, b.destination)}">${b.destination}</a>`
            : html`<a href="${exchangeHref(b.vhost, b.destination)}">${b.destination}</a> <small>(exchange)</small>`;
    return html`<table class="list bindings">
        <thead>
            <tr><th>${side === "destination" ? "From" : "To"}</th><th>Routing key</th><th>Arguments</th><th></th></tr>
        </thead>
        <tbody>
            ${bindings.map(
                (b, i) => html`<tr>
                    <td>${other(b)}</td>
                    <td class="mono">${b.routing_key}</td>
                    <td>${jsonCell(b.arguments)}</td>
                    <td>${b.source === "" ? "" : html`<button type="button" class="small" data-unbind="${i}">Unbind</button>`}</td>
                </tr>`,
            )}
        </tbody>
    </table>`;
}

export function unbind(ctx, b) {
    const kind = b.destination_type === "queue" ? "q" : "e";
    return ctx.act(
        () => api.del(`/bindings/${enc(b.vhost)}/e/${enc(b.source)}/${kind}/${enc(b.destination)}/${enc(b.properties_key)}`),
        "Binding removed.",
    );
}

// The add-binding form. With toQueue, the binding is from an exchange the
// user names to this queue; otherwise from this exchange to a queue or
// exchange the user names.
export function bindForm({ toQueue }) {
    return html`<form class="grid" data-form="bind">
        ${toQueue
            ? html`<label>From exchange</label><input name="other" required />`
            : html`<label>To</label>
                  <div class="actions">
                      <select name="kind">
                          <option value="q">Queue</option>
                          <option value="e">Exchange</option>
                      </select>
                      <input name="other" required />
                  </div>`}
        <label>Routing key</label><input name="routing_key" />
        <label class="top">Arguments</label><textarea name="arguments" rows="2" placeholder="{}"></textarea>
        <div class="wide actions"><button type="submit" class="primary">Bind</button></div>
    </form>`;
}

export function bindBind(form, ctx, vhost, name, toQueue) {
    form.addEventListener("submit", (e) => {
        e.preventDefault();
        ctx.act(async () => {
            const f = formData(form);
            const body = { routing_key: f.routing_key, arguments: parseJsonObject(f.arguments, "Arguments") };
            const path = toQueue
                ? `/bindings/${enc(vhost)}/e/${enc(f.other)}/q/${enc(name)}`
                : `/bindings/${enc(vhost)}/e/${enc(name)}/${f.kind}/${enc(f.other)}`;
            await api.post(path, body);
            form.reset();
        }, "Binding added.");
    });
}
