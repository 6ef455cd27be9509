#!/usr/bin/env python3
"""Draws the evaluation's plots (docs/plots/*.svg) from the benchmark
results in bench/results/*.json (`make plots`). Plain SVG written here,
no plotting library: each plot is a line or grouped-bar chart with its
axis, labels and legend. A result file that is missing is skipped, and
said.

Usage: plots.py [RESULTS_DIR] [OUT_DIR]
"""
import html
import json
import math
import os
import sys

COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"]
W, H = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 50, 110


def esc(text):
    return html.escape(str(text), quote=True)


def nice_max(value):
    if value <= 0:
        return 1
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def frame(title, subtitle):
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">'
           f'{esc(title)}</text>',
           f'<text x="{W / 2}" y="38" text-anchor="middle" fill="#555">{esc(subtitle)}</text>']
    return out


def y_axis(out, top_value, unit, log=False, low=1):
    plot_h = H - TOP - BOTTOM
    ticks = []
    if log:
        v = 10 ** math.floor(math.log10(low))
        while v <= top_value * 1.0001:
            ticks.append(v)
            v *= 10
    else:
        ticks = [top_value * i / 5 for i in range(6)]
    for t in ticks:
        y = y_of(t, top_value, log, low)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt(t))}</text>')
    out.append(f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {TOP + plot_h / 2})">{esc(unit)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#333"/>')
    out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#333"/>')


def y_of(value, top_value, log=False, low=1):
    plot_h = H - TOP - BOTTOM
    if log:
        lo = math.log10(10 ** math.floor(math.log10(low)))
        hi = math.log10(top_value)
        frac = (math.log10(max(value, 10 ** lo)) - lo) / (hi - lo)
    else:
        frac = value / top_value
    return H - BOTTOM - frac * plot_h


def legend(out, names):
    x = LEFT
    y = H - 18
    for i, name in enumerate(names):
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{esc(name)}</text>')
        x += 24 + 7 * len(name)


def bars(path, title, subtitle, categories, series, unit, log=False, reference=None):
    """Grouped bars: `series` is [(name, [value per category])]."""
    values = [v for _, vs in series for v in vs if v is not None]
    top = nice_max(max(values + ([reference] if reference else [])))
    if log:
        top = 10 ** math.ceil(math.log10(max(values)))
    low = min(values) if log else 0
    out = frame(title, subtitle)
    y_axis(out, top, unit, log, low if log else 1)
    plot_w = W - LEFT - RIGHT
    group_w = plot_w / len(categories)
    bar_w = group_w * 0.8 / len(series)
    for c, category in enumerate(categories):
        gx = LEFT + c * group_w + group_w * 0.1
        for s, (name, vs) in enumerate(series):
            v = vs[c]
            if v is None:
                continue
            y = y_of(v, top, log, low if log else 1)
            x = gx + s * bar_w
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                       f'height="{H - BOTTOM - y:.1f}" fill="{COLORS[s % len(COLORS)]}">'
                       f'<title>{esc(name)}: {v:.4g}</title></rect>')
            label = fmt(round(v, -2)) if v >= 1000 else f"{v:.3g}"
            out.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                       f'font-size="10">{esc(label)}</text>')
        cx = LEFT + c * group_w + group_w / 2
        words = str(category).split(" ")
        lines, line = [], ""
        for w in words:
            if line and len(line) + len(w) > max(6, int(group_w / 6)):
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}".strip()
        lines.append(line)
        size = ' font-size="9"' if len(categories) > 8 else ""
        for i, text in enumerate(lines[:5]):
            out.append(f'<text x="{cx:.1f}" y="{H - BOTTOM + 16 + 13 * i}" text-anchor="middle"'
                       f'{size}>{esc(text)}</text>')
    if reference:
        y = y_of(reference, top)
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c00" '
                   f'stroke-dasharray="5,4"/>')
    legend(out, [name for name, _ in series])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def lines(path, title, subtitle, xs, series, unit, x_label):
    values = [v for _, vs in series for v in vs]
    top = nice_max(max(values))
    out = frame(title, subtitle)
    y_axis(out, top, unit)
    plot_w = W - LEFT - RIGHT
    for i, x in enumerate(xs):
        px = LEFT + plot_w * (i + 0.5) / len(xs)
        out.append(f'<text x="{px:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{esc(x)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{H - BOTTOM + 36}" text-anchor="middle">'
               f'{esc(x_label)}</text>')
    for s, (name, vs) in enumerate(series):
        points = " ".join(f"{LEFT + plot_w * (i + 0.5) / len(xs):.1f},{y_of(v, top):.1f}"
                          for i, v in enumerate(vs))
        color = COLORS[s % len(COLORS)]
        out.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(vs):
            out.append(f'<circle cx="{LEFT + plot_w * (i + 0.5) / len(xs):.1f}" cy="{y_of(v, top):.1f}" '
                       f'r="3" fill="{color}"><title>{esc(name)}: {v:.4g}</title></circle>')
    legend(out, [name for name, _ in series])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def short_case(row):
    """A short label for a row of apps-host.json."""
    case = row["case"]
    if row["benchmark"] == "maglev":
        return f"maglev {case.split()[0]} flows"
    if row["benchmark"] == "kv":
        parts = [p.strip() for p in case.split(",")]
        sizes = f"{parts[1].split('-')[0]}/{parts[2].split('-')[0]}"
        return f"kv {parts[0].replace('set (', '').replace(')', '')} {sizes}"
    return f"parse {case.split()[0]}"


def load(results, name):
    path = os.path.join(results, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"plots: skipping {name}: {e}")
        return None


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "docs/plots"
    os.makedirs(out_dir, exist_ok=True)
    made = []

    def target(name):
        made.append(name)
        return os.path.join(out_dir, name)

    if (h := load(results, "hashtable.json")):
        rows = h["rows"]
        lines(target("hashtable.svg"), "Hashtable lookups: C against Rust (host)",
              f"TSC ticks per lookup, lower is better; 75 % full; {h['cpu']}",
              [f"2^{r['log2_slots']}" for r in rows],
              [("C", [r["c"] for r in rows]), ("idiomatic Rust", [r["idiomatic"] for r in rows]),
               ("C-style Rust", [r["c_style"] for r in rows])], "ticks per lookup", "slots")
    if (a := load(results, "apps-host.json")):
        rows = a["rows"]
        bars(target("apps-host.svg"), "Application cores: C's time over ours (host)",
             f"above 1.0 (red line) ours is faster; medians of {a['runs']} runs; {a['cpu']}",
             [short_case(r) for r in rows],
             [("C / ours", [r["c_vs_ours"] for r in rows])], "ratio", reference=1.0)
    if (m := load(results, "maglev.json")):
        bars(target("maglev.svg"), "Maglev in QEMU (TCG): frames per second",
             f"{m['flows']} flows, {m['backends']} backends, median of {m['rounds']} runs; log scale",
             ["in the domain, no NIC", "through igb", "through nic-shadow over igb"],
             [("frames/s", [m["pps_in_domain"], m["pps_driver"], m["pps_shadow"]])],
             "frames per second", log=True)
    if (q := load(results, "apps-qemu.json")):
        keys = list(q["rows"])
        bars(target("apps-qemu.svg"), "httpd and kvstore against nginx and memcached (QEMU, TCG)",
             f"same QEMU, NIC ({q['nic']}) and clients; ours over Linux's; medians of {q['rounds']} rounds",
             keys, [("ours / Linux", [q["rows"][k]["ratio"] for k in keys])], "ratio", reference=1.0)
    if (n := load(results, "net.json")):
        # The user network's rows, then the tap's (host Linux TCP as the
        # peer) where the run had a namespace.
        sets = [(f"{x} (user net)", n["nics"][x]) for x in n["nics"]]
        sets += [(f"{x} (tap)", r) for x, r in (n.get("tap") or {}).items()]
        bars(target("net.svg"), "TCP echo through the network path (QEMU, TCG)",
             f"MiB/s on one connection, median of {n['rounds']}",
             [name for name, _ in sets],
             [("driver", [r["tcp_mib_s_direct"] for _, r in sets]),
              ("through nic-shadow", [r["tcp_mib_s_shadow"] for _, r in sets]),
              ("shadow, driver crashed every second",
               [r["tcp_mib_s_shadow_crash_every_s"] for _, r in sets])], "MiB/s")
    if (q := load(results, "qemu.json")):
        rows = [b for b in q["benchmarks"] if b["name"].startswith(("nvme", "shadow, crash"))]
        bars(target("nvme.svg"), "NVMe in QEMU (TCG): cost against the driver's own loop",
             "ratio of ticks per request (1.0 = no overhead), median of the boots' ratios",
             [b["name"] for b in rows], [("ratio", [b["ratio"] for b in rows])], "ratio",
             reference=1.0)
        rows = [b for b in q["benchmarks"] if b["name"] in (
            "domain call", "continuation only", "domain entry (empty)", "call moving an RRef in and back",
            "async call (ready)", "RRef<[u8; 64]> alloc+drop")]
        bars(target("crossing-qemu.svg"), "Crossing costs in QEMU (TCG)",
             "TSC ticks per operation under TCG: ours and the baseline of the same boot",
             [b["name"] for b in rows], [("ours", [b["median"] for b in rows]),
                                         ("baseline", [b["baseline_median"] for b in rows])], "ticks")
    if (r := load(results, "rv6.json")):
        names = list(r["rows"])
        bars(target("rv6.svg"), "rv6's file system against the raw block device (QEMU, TCG)",
             f"MiB/s, median of {r['rounds']} rounds", names,
             [("raw block device", [r["rows"][k]["raw_mib_s"] for k in names]),
              ("through fs/files", [r["rows"][k]["fs_mib_s"] for k in names])], "MiB/s", log=True)
    print(f"plots: wrote {', '.join(made)} to {out_dir}")


if __name__ == "__main__":
    main()
