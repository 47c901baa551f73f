"""Aggregation and reporting: medians, ratios, acceptance bars, table, summary line, plot.

Everything here works on the plain dicts that go into the JSON result file,
so a result file can be re-rendered later (``python -m bench.run --render FILE``).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from typing import Any

__all__ = [
    "BARS",
    "TARGETS",
    "aggregate",
    "evaluate_bars",
    "format_machine",
    "format_table",
    "git_info",
    "machine_info",
    "summary_line",
    "write_plot",
]

TARGETS = ("direct", "nutcracker", "corenet")

#: Issue #23's acceptance bars: (label, metric, comparison, threshold).  ``ops``
#: is corenet/nutcracker ops/s, ``cpu`` corenet/nutcracker CPU per request.
#: (Issue #8's, met or superseded: depth 1 >= 1.0x at <= 1.15x CPU, depth 16
#: >= 0.6x, mget10@16 >= 0.5x.)
BARS: tuple[tuple[str, str, str, float], ...] = (
    ("get@1", "ops", ">=", 1.0),
    ("set@1", "ops", ">=", 1.0),
    ("get@1", "cpu", "<=", 1.1),
    ("set@1", "cpu", "<=", 1.1),
    ("mget10@1", "ops", ">=", 0.85),
    ("get@16", "ops", ">=", 0.9),
    ("set@16", "ops", ">=", 0.9),
    ("mget10@16", "ops", ">=", 0.8),
    ("mc-get", "ops", ">=", 0.85),
    ("mc-set", "ops", ">=", 0.85),
    ("mc-mget10", "ops", ">=", 0.8),
)

Json = dict[str, Any]


def tool_version(argv: list[str], cwd: str | None = None) -> str | None:
    """First line a ``--version``-like command prints (stdout or stderr), or None."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
    if not text:
        return None
    if done.returncode != 0:
        return f"error: {text.splitlines()[-1]}"
    return text.splitlines()[0]


def machine_info(binaries: dict[str, str | None]) -> Json:
    """CPU model, cores, memory, kernel, Python and tool versions, load average."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    version_flags = {
        "redis-server": ["--version"],
        "redis-benchmark": ["--version"],
        "nutcracker": ["-V"],
        "memcached": ["-V"],
        "memcaslap": ["-V"],
    }
    versions: dict[str, str | None] = {}
    for name, flags in version_flags.items():
        path = binaries.get(name)
        versions[name] = tool_version([path, *flags]) if path else None
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def git_info(repo: str) -> Json:
    """``{"commit": short hash or None, "dirty": bool or None}`` (read-only git calls)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", repo, *args], capture_output=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode().strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def format_machine(machine: Json, git: Json) -> str:
    """One paragraph describing the machine and the code measured."""
    v = machine.get("versions", {})
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    if git.get("corenet_cmd"):
        commit = f"started by {git['corenet_cmd']!r} (bench checkout at {commit})"
    load = machine.get("load_average")
    load_text = " ".join(f"{x:.2f}" for x in load) if load else "n/a"
    return (
        f"machine: {machine.get('cpu_model')}, {machine.get('cpus')} CPUs, "
        f"{machine.get('memory_gb')} GB, {machine.get('kernel')}, {machine.get('python')}\n"
        f"tools: {v.get('redis-server')}; {v.get('redis-benchmark')}; {v.get('nutcracker')}; "
        f"{v.get('memcached')}; {v.get('memcaslap')}; {v.get('corenet-proxy')}\n"
        f"corenet commit: {commit}; load average at start: {load_text}"
    )


# --------------------------------------------------------------------------
# aggregation


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def aggregate(
    runs: list[Json], cases: list[Json], statuses: dict[str, dict[str, str]]
) -> list[Json]:
    """Medians per case and target, plus the corenet/nutcracker and corenet/direct ratios.

    ``cases`` are dicts with ``protocol``, ``test``, ``depth``, ``label``;
    ``statuses[protocol][target]`` is "ok" or why the target was not measured.
    """
    rows = []
    for case in cases:
        row: Json = {k: case[k] for k in ("protocol", "test", "depth", "label", "requests")}
        row["targets"] = {}
        for target in TARGETS:
            mine = [r for r in runs if r["label"] == case["label"] and r["target"] == target]
            good = [r for r in mine if r["ok"]]
            status = statuses.get(case["protocol"], {}).get(target, "not run")
            if status == "ok" and mine and len(good) < len(mine):
                status = f"failed {len(mine) - len(good)}/{len(mine)} runs"
            elif status == "ok" and not mine:
                status = "not run"
            ops = [r["ops"] for r in good]
            cell: Json = {"status": status, "runs": len(mine), "ok_runs": len(good)}
            for name in ("ops", "avg_ms", "p50_ms", "p99_ms", "cpu_us_per_req", "cpu_us_per_key"):
                vals = [r[name] for r in good if r.get(name) is not None]
                cell[name] = _median(vals)
            cell["ops_min"] = min(ops) if ops else None
            cell["ops_max"] = max(ops) if ops else None
            cell["ops_spread"] = (
                (max(ops) - min(ops)) / 2 / cell["ops"] if ops and cell["ops"] else None
            )
            cell["backend_check"] = all(r.get("backend_check", True) for r in good)
            row["targets"][target] = cell
        shares = [
            r["other_cpu_share"]
            for r in runs
            if r["label"] == case["label"] and r.get("other_cpu_share") is not None
        ]
        row["other_cpu_share"] = _median(shares)
        row["other_cpu_share_max"] = max(shares) if shares else None
        t = row["targets"]
        row["paired"] = _paired_ratios([r for r in runs if r["label"] == case["label"]])
        row["ratios"] = {
            "ops_corenet_nutcracker": _ratio(t["corenet"]["ops"], t["nutcracker"]["ops"]),
            "ops_corenet_direct": _ratio(t["corenet"]["ops"], t["direct"]["ops"]),
            "ops_nutcracker_direct": _ratio(t["nutcracker"]["ops"], t["direct"]["ops"]),
            "cpu_corenet_nutcracker": _ratio(
                t["corenet"]["cpu_us_per_req"], t["nutcracker"]["cpu_us_per_req"]
            ),
        }
        rows.append(row)
    return rows


def _paired_ratios(runs: list[Json]) -> Json:
    """Ratios within each repetition (the runs compared ran back to back): median, min, max."""
    pairs = {
        "ops_corenet_nutcracker": ("corenet", "nutcracker", "ops"),
        "ops_corenet_direct": ("corenet", "direct", "ops"),
        "cpu_corenet_nutcracker": ("corenet", "nutcracker", "cpu_us_per_req"),
    }
    by_rep: dict[int, dict[str, Json]] = {}
    for r in runs:
        if r["ok"]:
            by_rep.setdefault(r["rep"], {})[r["target"]] = r
    out: Json = {}
    for key, (a, b, metric) in pairs.items():
        values = []
        for targets in by_rep.values():
            if a in targets and b in targets:
                ratio = _ratio(targets[a].get(metric), targets[b].get(metric))
                if ratio is not None:
                    values.append(ratio)
        out[key] = (
            {"median": _median(values), "min": min(values), "max": max(values), "n": len(values)}
            if values
            else None
        )
    return out


def evaluate_bars(rows: list[Json], applicable: bool) -> list[Json]:
    """Each acceptance bar with the measured ratio and whether it is met (None: not measured)."""
    by_label = {row["label"]: row for row in rows}
    out = []
    for label, metric, op, threshold in BARS:
        row = by_label.get(label)
        key = "ops_corenet_nutcracker" if metric == "ops" else "cpu_corenet_nutcracker"
        value = row["ratios"][key] if row else None
        met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        out.append(
            {
                "label": label,
                "metric": metric,
                "op": op,
                "threshold": threshold,
                "value": value,
                "met": met,
                "applicable": applicable,
            }
        )
    return out


# --------------------------------------------------------------------------
# text output


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _ops_cell(cell: Json) -> str:
    if cell["ops"] is None:
        status = cell["status"]
        return "unsupported" if status.startswith("unsupported") else status.split(":")[0]
    text = _num(cell["ops"])
    if cell.get("ops_spread") is not None and cell["ok_runs"] > 1:
        text += f" ±{cell['ops_spread'] * 100:.0f}%"
    if not cell.get("backend_check", True):
        text += " (!)"
    if cell["ok_runs"] < cell["runs"]:
        text += f" ({cell['ok_runs']}/{cell['runs']} ok)"
    return text


def _cpu_cell(cell: Json, keys: int) -> str:
    if cell.get("cpu_us_per_req") is None:
        return "-"
    text = f"{cell['cpu_us_per_req']:.1f}"
    if keys > 1 and cell.get("cpu_us_per_key") is not None:
        text += f" ({cell['cpu_us_per_key']:.2f}/key)"
    return text


def format_table(rows: list[Json]) -> str:
    """Markdown table of the medians (readable in a terminal, pasteable into docs)."""
    head = (
        "| test | direct ops/s | nutcracker ops/s | corenet ops/s | cn/nc | cn/direct "
        "| p50 ms d / nc / cn | p99 ms d / nc / cn | CPU us/req nc | CPU us/req cn "
        "| CPU cn/nc | other load |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for row in rows:
        t = row["targets"]
        keys = 10 if row["test"] == "mget10" else 1
        lat = [" / ".join(_num(t[n][f], "{:.2f}") for n in TARGETS) for f in ("p50_ms", "p99_ms")]
        r = row["ratios"]
        lines.append(
            f"| {row['label']} | {_ops_cell(t['direct'])} | {_ops_cell(t['nutcracker'])} "
            f"| {_ops_cell(t['corenet'])} | {_x(r['ops_corenet_nutcracker'])} "
            f"| {_x(r['ops_corenet_direct'])} | {lat[0]} | {lat[1]} "
            f"| {_cpu_cell(t['nutcracker'], keys)} | {_cpu_cell(t['corenet'], keys)} "
            f"| {_x(r['cpu_corenet_nutcracker'])} | {_pct(row.get('other_cpu_share'))} |"
        )
    return "\n".join(lines)


def format_paired(rows: list[Json]) -> str:
    """Ratios taken within each repetition: median [min - max] over the repetitions."""

    def cell(value: Json | None) -> str:
        if not value:
            return "n/a"
        return f"{value['median']:.2f}x [{value['min']:.2f}-{value['max']:.2f}]"

    lines = ["| test | ops cn/nc | CPU/req cn/nc | ops cn/direct | reps |", "|---|---|---|---|---|"]
    for row in rows:
        paired = row.get("paired") or {}
        n = max((v["n"] for v in paired.values() if v), default=0)
        lines.append(
            f"| {row['label']} | {cell(paired.get('ops_corenet_nutcracker'))} "
            f"| {cell(paired.get('cpu_corenet_nutcracker'))} "
            f"| {cell(paired.get('ops_corenet_direct'))} | {n} |"
        )
    return "\n".join(lines)


def format_bars(bars: list[Json]) -> str:
    """The acceptance bars, one per line."""
    lines = []
    for bar in bars:
        what = "ops/s" if bar["metric"] == "ops" else "CPU/req"
        mark = {True: "met", False: "NOT met", None: "not measured"}[bar["met"]]
        lines.append(
            f"  corenet/nutcracker {what} {bar['label']}: {_x(bar['value'])} "
            f"(bar {bar['op']} {bar['threshold']}x) {mark}"
        )
    if bars and not bars[0]["applicable"]:
        lines.append(
            "  (indicative only: the bars are defined for 50 clients, 2 backends, "
            ">= 1,000,000 keys, full run)"
        )
    return "\n".join(lines)


def corenet_measured(rows: list[Json]) -> bool:
    """Whether any case measured corenet at all (else the run must fail)."""
    return any(row["targets"]["corenet"]["ok_runs"] for row in rows)


def summary_line(rows: list[Json], bars: list[Json]) -> str:
    """``SUMMARY corenet/nutcracker ops: ... ; cpu/req: ... ; corenet/direct ops: ... ; bars``."""

    def part(key: str) -> str:
        return " ".join(f"{row['label']} {_x(row['ratios'][key])}" for row in rows)

    measured = [b for b in bars if b["met"] is not None]
    met = sum(1 for b in measured if b["met"])
    return (
        f"SUMMARY corenet/nutcracker ops: {part('ops_corenet_nutcracker')} ; "
        f"cpu/req: {part('cpu_corenet_nutcracker')} ; "
        f"corenet/direct ops: {part('ops_corenet_direct')} ; "
        f"bars met {met}/{len(bars)}"
    )


# --------------------------------------------------------------------------
# plot


def _finish_axes(
    ax: Any,
    rows: list[Json],
    ratio: str,
    tops: list[float],
    *,
    label_dy: float,
    headroom: float,
    ylabel: str,
    title: str,
    grid: Json,
) -> None:
    """Label each group of ``ax`` with its corenet/nutcracker ``ratio`` above
    its highest point (``tops``), leave ``headroom`` above the highest, then
    the axis labels, legend, title and ``grid``."""
    for n, row in enumerate(rows):
        value = row["ratios"][ratio]
        if value is not None and tops[n]:
            ax.annotate(
                f"cn/nc {value:.2f}x",
                (n, tops[n]),
                textcoords="offset points",
                xytext=(0, label_dy),
                ha="center",
                fontsize=7.5,
                fontweight="bold",
            )
    if any(tops):
        ax.set_ylim(top=max(tops) * headroom)
    ax.set_ylabel(ylabel)
    ax.set_xticks(list(range(len(rows))), [row["label"] for row in rows])
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", **grid)


def write_plot(result: Json, path: str) -> str | None:
    """Write the PNG (ops/s and CPU/request per configuration); returns a reason if skipped."""
    try:
        import matplotlib  # noqa: PLC0415 - optional dependency

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib); plot skipped"

    rows = result["results"]
    colors = {"direct": "#9e9e9e", "nutcracker": "#1f77b4", "corenet": "#d62728"}
    fig, (ax_ops, ax_cpu) = plt.subplots(
        2, 1, figsize=(max(8.0, 1.1 * len(rows) + 3), 8.5), gridspec_kw={"height_ratios": [3, 2]}
    )
    width = 0.27
    xs = range(len(rows))
    tops = [0.0] * len(rows)  # highest point (bar or error bar) of each group, k/s
    for k, target in enumerate(TARGETS):
        cells = [row["targets"][target] for row in rows]
        pos = [x + (k - 1) * width for x in xs]
        have = [n for n, c in enumerate(cells) if c["ops"]]
        if have:
            meds = [cells[n]["ops"] / 1000 for n in have]
            lows = [m - (cells[n]["ops_min"] or 0) / 1000 for m, n in zip(meds, have, strict=True)]
            highs = [(cells[n]["ops_max"] or 0) / 1000 - m for m, n in zip(meds, have, strict=True)]
            ax_ops.bar(
                [pos[n] for n in have],
                meds,
                width,
                label=target,
                color=colors[target],
                yerr=[lows, highs],
                capsize=2,
                error_kw={"elinewidth": 0.8},
            )
            for n in have:
                tops[n] = max(tops[n], (cells[n]["ops_max"] or cells[n]["ops"]) / 1000)
        for n, cell in enumerate(cells):
            if not cell["ops"]:
                word = "unsupported" if cell["status"].startswith("unsup") else "n/a"
                ax_ops.text(
                    pos[n],
                    0.02,
                    word,
                    transform=ax_ops.get_xaxis_transform(),
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    color=colors[target],
                )
    ax_ops.set_yscale("log")
    _finish_axes(
        ax_ops,
        rows,
        "ops_corenet_nutcracker",
        tops,
        label_dy=4,
        headroom=2.2,
        ylabel="thousand requests/s, log scale\n(median; whiskers: min-max)",
        title="throughput per configuration (cn/nc: corenet / nutcracker, medians)",
        grid={"which": "both", "alpha": 0.25},
    )
    for k, target in enumerate(("nutcracker", "corenet")):
        vals = [row["targets"][target]["cpu_us_per_req"] for row in rows]
        pos = [x + (k - 0.5) * width for x in xs]
        ax_cpu.bar(pos, [v or 0 for v in vals], width, label=target, color=colors[target])
        for x, v in zip(pos, vals, strict=True):
            ax_cpu.annotate(
                "n/a" if v is None else f"{v:.1f}",
                (x, v or 0),
                textcoords="offset points",
                xytext=(0, 2),
                ha="center",
                fontsize=7,
            )
    cpu_tops = [
        max(
            row["targets"]["nutcracker"]["cpu_us_per_req"] or 0,
            row["targets"]["corenet"]["cpu_us_per_req"] or 0,
        )
        for row in rows
    ]
    _finish_axes(
        ax_cpu,
        rows,
        "cpu_corenet_nutcracker",
        cpu_tops,
        label_dy=13,
        headroom=1.3,
        ylabel="proxy CPU us per request",
        title="proxy CPU time per request (user+system, /proc/PID/stat)",
        grid={"alpha": 0.3},
    )
    machine = result["machine"]
    commit = result["git"].get("commit") or "?"
    if result["git"].get("dirty"):
        commit += "+dirty"
    if result["git"].get("corenet_cmd"):
        commit = "(custom command)"
    settings = result["settings"]
    fig.suptitle(
        f"corenet {commit} vs nutcracker -v 4 | {machine['cpu_model']}, {machine['cpus']} CPUs | "
        f"{settings['clients']} clients, {settings['backends']} backends, "
        f"{settings['keyspace']:,} keys, {settings['repeat']} reps | {result['started'][:10]}",
        fontsize=9,
    )
    fig.tight_layout()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
