// chart.js: small live line charts on a canvas, for the message rates and
// queue lengths the API reports every 5 s.
//
// The API gives the current value of each figure (a count, or a rate in
// message_stats.*_details.rate); a History keeps the samples this tab has
// seen, at most MAX_POINTS (10 minutes at one per 5 s). A Chart draws a
// history across its width (at least one minute wide, so that the first
// samples do not fill it) with a legend of the latest values. Series
// colours come from the palette shared with the CSS (.swatch.c0 ...).

import { html, setHtml, fmtNum, fmtRate } from "./dom.js";

const MAX_POINTS = 120;
const MIN_WINDOW = 60e3;
const PALETTE = ["#e8590c", "#1c7ed6", "#2f9e44", "#ae3ec9", "#f59f00", "#868e96"];
const MAX_HISTORIES = 32;

// A time series of samples {t, values: {key: number}}.
export class History {
    constructor() {
        this.points = [];
    }
    push(values, t = Date.now()) {
        this.points.push({ t, values });
        if (this.points.length > MAX_POINTS) this.points.shift();
    }
    last() {
        return this.points.length ? this.points[this.points.length - 1].values : {};
    }
}

// The history kept under key ("overview", "queue /|orders"): it outlives
// the page, so coming back to a page shows the curve so far. The oldest
// of more than MAX_HISTORIES is dropped.
const histories = new Map();
export function historyFor(key) {
    let h = histories.get(key);
    if (h) histories.delete(key);
    else h = new History();
    histories.set(key, h);
    if (histories.size > MAX_HISTORIES) histories.delete(histories.keys().next().value);
    return h;
}

// The smallest "nice" number (1, 2, 2.5, 5 times a power of ten) >= x.
function niceCeil(x) {
    if (x <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(x)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return m * p;
    return 10 * p;
}

function shortNum(v) {
    if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toFixed(2));
}

export class Chart {
    // series: [{key, label}]; rate: values are per second.
    constructor(container, title, series, { rate = false } = {}) {
        this.series = series;
        this.rate = rate;
        this.history = null;
        container.classList.add("chart");
        setHtml(
            container,
            html`<h3>${title}</h3>
                <div class="chart-body">
                    <canvas width="400" height="160" role="img" aria-label="${title}"></canvas>
                    <table class="legend"></table>
                </div>`,
        );
        this.canvas = container.querySelector("canvas");
        this.legend = container.querySelector(".legend");
        this.onResize = () => this.draw();
        window.addEventListener("resize", this.onResize);
    }

    destroy() {
        window.removeEventListener("resize", this.onResize);
    }

    update(history) {
        this.history = history;
        this.draw();
        const last = history.last();
        setHtml(
            this.legend,
            this.series.map(
                (s, i) =>
                    html`<tr>
                        <td><span class="swatch c${i}"></span>${s.label}</td>
                        <td class="num" data-key="${s.key}">${this.rate ? fmtRate(last[s.key] ?? 0) : fmtNum(last[s.key] ?? 0)}</td>
                    </tr>`,
            ),
        );
    }

    draw() {
        const cv = this.canvas;
        const dpr = window.devicePixelRatio || 1;
        const w = cv.clientWidth || 400;
        const h = cv.clientHeight || 160;
        if (cv.width !== Math.round(w * dpr) || cv.height !== Math.round(h * dpr)) {
            cv.width = Math.round(w * dpr);
            cv.height = Math.round(h * dpr);
        }
        const g = cv.getContext("2d");
        g.setTransform(dpr, 0, 0, dpr, 0, 0);
        g.clearRect(0, 0, w, h);
        const pts = this.history ? this.history.points : [];
        const left = 44;
        const right = 12;
        const top = 8;
        const bottom = 20;
        const pw = w - left - right;
        const ph = h - top - bottom;
        const now = pts.length ? pts[pts.length - 1].t : Date.now();
        const span = Math.max(MIN_WINDOW, pts.length ? now - pts[0].t : 0);
        let max = 0;
        for (const p of pts) for (const s of this.series) max = Math.max(max, p.values[s.key] || 0);
        const ymax = niceCeil(Math.max(max, this.rate ? 1 : 4)); // counts: whole ticks

        g.font = "11px system-ui, sans-serif";
        g.fillStyle = "#666";
        g.strokeStyle = "#e3e3e3";
        g.lineWidth = 1;
        g.textBaseline = "middle";
        g.textAlign = "right";
        for (let i = 0; i <= 4; i++) {
            const y = top + ph - (ph * i) / 4;
            g.beginPath();
            g.moveTo(left, Math.round(y) + 0.5);
            g.lineTo(left + pw, Math.round(y) + 0.5);
            g.stroke();
            g.fillText(shortNum((ymax * i) / 4) + (this.rate ? "/s" : ""), left - 4, y);
        }
        g.textAlign = "center";
        g.textBaseline = "top";
        for (const frac of [0, 0.5, 1]) {
            const secs = Math.round((span * (1 - frac)) / 1000);
            const label = secs === 0 ? "now" : secs >= 120 ? `-${Math.round(secs / 60)}m` : `-${secs}s`;
            g.textAlign = frac === 0 ? "left" : frac === 1 ? "right" : "center";
            g.fillText(label, left + pw * frac, top + ph + 5);
        }
        const x = (t) => left + pw * (1 - (now - t) / span);
        const y = (v) => top + ph - (ph * v) / ymax;
        g.lineWidth = 2;
        g.lineJoin = "round";
        this.series.forEach((s, i) => {
            g.strokeStyle = PALETTE[i % PALETTE.length];
            g.beginPath();
            pts.forEach((p, j) => {
                const px = x(p.t);
                const py = y(p.values[s.key] || 0);
                if (j === 0) g.moveTo(px, py);
                else g.lineTo(px, py);
            });
            if (pts.length === 1) g.arc(x(pts[0].t), y(pts[0].values[s.key] || 0), 1.5, 0, 2 * Math.PI);
            g.stroke();
        });
    }
}
