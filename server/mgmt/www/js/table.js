// table.js: a list of broker objects that the server pages, sorts and
// filters (the API's page, page_size, name, use_regex, sort, sort_reverse
// and columns parameters), so that a list of 100,000 queues costs the
// browser one page of rows. The UI never fetches a whole list.
//
// The filter, sort and page size of each list are kept in sessionStorage
// under its id, so they survive the 5 s refresh and moving between pages.

import { call, listQuery, ApiError } from "./api.js";
import { html, setHtml, fmtNum, debounce } from "./dom.js";

const PAGE_SIZES = [20, 100, 250, 500];

export class PagedTable {
    // opts: id, path() -> API path, columns: [{label, sort, cls, render(item)}],
    // apiColumns (the `columns` parameter), filter (default true),
    // defaultSort, pageSize, empty (text for no items), noun.
    constructor(container, opts) {
        this.opts = { filter: true, pageSize: 100, empty: "Nothing to show.", noun: "item", ...opts };
        this.state = {
            page: 1,
            pageSize: this.opts.pageSize,
            name: "",
            regex: false,
            sort: this.opts.defaultSort || "",
            reverse: false,
        };
        try {
            Object.assign(this.state, JSON.parse(sessionStorage.getItem(this.key()) || "{}"));
        } catch {
            /* a damaged entry: defaults */
        }
        this.root = container;
        this.items = [];
        setHtml(
            container,
            html`<div class="list-controls">
                    ${this.opts.filter &&
                    html`<label>Filter <input type="search" class="filter" placeholder="name" value="${this.state.name}" /></label>
                        <label class="check"><input type="checkbox" class="regex" ${this.state.regex ? html`checked` : ""} /> Regex</label>`}
                    <span class="count"></span>
                    <span class="pager">
                        <button type="button" data-page="first" title="First page">«</button>
                        <button type="button" data-page="prev" title="Previous page">‹</button>
                        <span class="page-label"></span>
                        <button type="button" data-page="next" title="Next page">›</button>
                        <button type="button" data-page="last" title="Last page">»</button>
                    </span>
                    <label
                        >Page size
                        <select class="page-size">
                            ${PAGE_SIZES.map((n) => html`<option value="${n}" ${n === this.state.pageSize ? html`selected` : ""}>${n}</option>`)}
                        </select></label
                    >
                </div>
                <div class="table-wrap">
                    <table class="list">
                        <thead></thead>
                        <tbody></tbody>
                    </table>
                </div>
                <p class="list-message" hidden></p>`,
        );
        this.bind();
    }

    key() {
        return `warren.list.${this.opts.id}`;
    }

    save() {
        sessionStorage.setItem(this.key(), JSON.stringify(this.state));
    }

    bind() {
        const r = this.root;
        const filter = r.querySelector(".filter");
        const regex = r.querySelector(".regex");
        const again = () => {
            this.state.page = 1;
            this.save();
            this.refresh();
        };
        if (filter) {
            const onInput = debounce(() => {
                this.state.name = filter.value;
                again();
            }, 300);
            filter.addEventListener("input", onInput);
            regex.addEventListener("change", () => {
                this.state.regex = regex.checked;
                again();
            });
        }
        r.querySelector(".page-size").addEventListener("change", (e) => {
            this.state.pageSize = Number(e.target.value);
            again();
        });
        r.querySelector(".pager").addEventListener("click", (e) => {
            const b = e.target.closest("button[data-page]");
            if (!b) return;
            const last = this.pageCount || 1;
            const to = { first: 1, prev: this.state.page - 1, next: this.state.page + 1, last }[b.dataset.page];
            this.state.page = Math.min(Math.max(1, to), last);
            this.save();
            this.refresh();
        });
        r.querySelector("thead").addEventListener("click", (e) => {
            const th = e.target.closest("th[data-sort]");
            if (!th) return;
            if (this.state.sort === th.dataset.sort) this.state.reverse = !this.state.reverse;
            else {
                this.state.sort = th.dataset.sort;
                this.state.reverse = false;
            }
            this.save();
            this.refresh();
        });
    }

    message(text) {
        const m = this.root.querySelector(".list-message");
        m.textContent = text || "";
        m.hidden = !text;
    }

    // Fetches and shows the current page. Resolves when done; a failure is
    // shown in the list (and rethrown only for a login problem).
    async refresh() {
        const s = this.state;
        const q = listQuery({ ...s, columns: this.opts.apiColumns });
        let res;
        try {
            res = await call("GET", this.opts.path() + q);
        } catch (e) {
            if (e instanceof ApiError && e.error === "page_out_of_range" && s.page > 1) {
                s.page = 1;
                return this.refresh();
            }
            this.message(e.message);
            if (e instanceof ApiError && e.status === 401) throw e;
            return;
        }
        this.items = res.items;
        this.pageCount = Math.max(1, res.page_count);
        this.render(res);
    }

    render(res) {
        const cols = this.opts.columns;
        // the header changes only with the sort: keep it between refreshes
        const head = `${this.state.sort} ${this.state.reverse}`;
        if (head !== this.head) this.renderHead();
        this.head = head;
        setHtml(
            this.root.querySelector("tbody"),
            res.items.map(
                (item, i) => html`<tr data-index="${i}">${cols.map((c) => html`<td class="${c.cls || ""}">${c.render(item)}</td>`)}</tr>`,
            ),
        );
        const from = res.item_count ? (res.page - 1) * res.page_size + 1 : 0;
        const to = from ? from + res.item_count - 1 : 0;
        const filtered = res.filtered_count !== res.total_count ? ` (filtered from ${fmtNum(res.total_count)})` : "";
        const noun = this.opts.noun + (res.filtered_count === 1 ? "" : "s");
        this.root.querySelector(".count").textContent = res.filtered_count
            ? `${fmtNum(from)}–${fmtNum(to)} of ${fmtNum(res.filtered_count)} ${noun}${filtered}`
            : `0 ${noun}${filtered}`;
        this.root.querySelector(".page-label").textContent = `Page ${fmtNum(res.page)} of ${fmtNum(this.pageCount)}`;
        for (const b of this.root.querySelectorAll(".pager button")) {
            const back = b.dataset.page === "first" || b.dataset.page === "prev";
            b.disabled = back ? res.page <= 1 : res.page >= this.pageCount;
        }
        this.message(res.items.length ? "" : this.opts.empty);
    }

    renderHead() {
        const s = this.state;
        setHtml(
            this.root.querySelector("thead"),
            html`<tr>
                ${this.opts.columns.map((c) => {
                    const cls = [c.cls, c.sort && "sortable", c.sort && c.sort === s.sort && (s.reverse ? "sorted desc" : "sorted asc")]
                        .filter(Boolean)
                        .join(" ");
                    return html`<th class="${cls}" ${c.sort ? html`data-sort="${c.sort}"` : ""} title="${c.title || ""}">${c.label}</th>`;
                })}
            </tr>`,
        );
    }

    // The item shown in the row that holds element el.
    itemOf(el) {
        const tr = el.closest("tr[data-index]");
        return tr ? this.items[Number(tr.dataset.index)] : undefined;
    }
}
