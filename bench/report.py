"""The results as a Markdown table and, when matplotlib is installed, a PNG bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.workloads import DIGEST_COST_GOAL_PCT


def fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}"


# Extra metrics shown as their own rows under a workload: key, label, unit, higher is better.
EXTRA_ROWS = [("p99_us", "same, p99", "µs", False),
              ("off_mib_s", "same, digests off", "MiB/s", True),
              ("cpu_us_per_io", "daemon CPU per I/O", "µs", False)]


def goal_text(w: dict[str, Any]) -> str:
    """``>= 1.3 ✓`` / ``<= 1.1 ✗`` for a workload with a goal ratio, else empty."""
    goal, ratio = w.get("goal_ratio"), w.get("ratio")
    if goal is None:
        return ""
    sign = ">=" if w["higher_is_better"] else "<="
    if ratio is None:
        return f"{sign} {goal:g}"
    met = ratio >= goal if w["higher_is_better"] else ratio <= goal
    return f"{sign} {goal:g} {'met' if met else 'not met'}"


def write_markdown(result: dict[str, Any]) -> str:
    """A table of medians per workload with the pytgt/tgt ratio, plus notes."""
    env = result["environment"]
    names: list[str] = env["targets"]
    lun = env.get("lun_desc") or f"file LUN {env['file_size'] >> 20} MiB (prefilled, cached)"
    lines = [
        f"## {env.get('title', 'pytgt vs tgt')} — {env['date']}",
        "",
        f"{env['cpus']} CPUs, kernel {env['kernel']}, Python {env['python']}, "
        f"pytgt {env['pytgt_commit']}, tgt {env['tgt']}, libiscsi {env['libiscsi']}, "
        f"qemu {env['qemu']}; medians of {env['runs']} alternation(s) of "
        f"{env['duration_s']:g} s; {lun}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in env['loadavg'])}.",
        "",
        "| workload | client | unit | " + " | ".join(names) + " | pytgt/tgt | "
        + ("pytgt/baseline | " if "baseline" in names else "") + "goal |",
        "|---|---|---|" + "---:|" * len(names) + "---:|"
        + ("---:|" if "baseline" in names else "") + "---|",
    ]
    for w in result["workloads"].values():
        cells = [fmt(w["median"].get(n)) for n in names]
        ratio = w.get("ratio")
        arrow = "" if w["higher_is_better"] else " (lower is better)"
        rtxt = f"{ratio:.2f}{arrow}" if ratio is not None else "—"
        if "baseline" in names:
            base = w.get("ratio_to_baseline")
            rtxt += " | " + (f"{base:.2f}{arrow}" if base is not None else "—")
        lines.append(f"| {w['title']} | {w['client']} | {w['unit']} | "
                     + " | ".join(cells) + f" | {rtxt} | {goal_text(w)} |")
        for key, label, unit, higher in EXTRA_ROWS:
            vals = {n: w["extra_median"].get(n, {}).get(key) for n in names}
            if all(v is None for v in vals.values()):
                continue
            a, b = vals.get("pytgt"), vals.get("tgt")
            r = (a / b) if a and b else None
            rt = "—" if r is None else f"{r:.2f}" + ("" if higher else " (lower is better)")
            lines.append(f"| ↳ {label} | | {unit} | "
                         + " | ".join(fmt(vals[n]) for n in names) + f" | {rt} | |")
    cpu = [(w["title"], [w["extra_median"].get(n, {}).get("daemon_cpu_pct") for n in names])
           for w in result["workloads"].values()]
    if any(v is not None for _, vs in cpu for v in vs):
        lines += ["", "Daemon CPU during the runs (100% = one core; the clients share the "
                  "same 2 cores, so less is better at equal work):", "",
                  "| workload | " + " | ".join(f"{n} CPU %" for n in names) + " |",
                  "|---|" + "---:|" * len(names)]
        lines += [f"| {title} | " + " | ".join(fmt(v) for v in vs) + " |" for title, vs in cpu]
    profiled = [(w["title"], w["profile_top"]) for w in result["workloads"].values()
                if w.get("profile_top")]
    if profiled:
        lines += ["", "pytgtd profile (py-spy, first run; frames most often on top of the stack):",
                  ""]
        for title, top in profiled:
            lines.append(f"- {title}: " + "; ".join(t.strip() for t in top[:5]))
    cost = result.get("digest_cost_pct") or {}
    if cost:
        pc = cost.get("pytgt")
        verdict = ("" if pc is None else
                   f" (goal: pytgt at most {DIGEST_COST_GOAL_PCT:g}%: "
                   f"{'met' if pc <= DIGEST_COST_GOAL_PCT else 'not met'})")
        lines += ["", "HeaderDigest=CRC32C cost at 1 MiB reads (median of paired runs, "
                  "against digests off): "
                  + ", ".join(f"{n} {c:.1f}%" if c is not None else f"{n} —"
                              for n, c in cost.items())
                  + f"{verdict}. libiscsi clients never offer DataDigest, so data digests "
                  "are not measured."]
    rss = result.get("rss_kib_after_runs") or {}
    if rss:
        lines += ["", "Daemon RSS after the runs: "
                  + ", ".join(f"{n} {v / 1024:.1f} MiB" for n, v in rss.items() if v) + "."]
    if result.get("footprint"):
        lines.append("")
    for n, fp in (result.get("footprint") or {}).items():
        if fp.get("error"):
            lines.append(f"Footprint {n}: error: {fp['error']}")
        else:
            per = fp.get("rss_kib_per_idle_session")
            lines.append(f"Footprint {n}: {fp['luns']} null LUNs configured in "
                         f"{fp['configure_s']:.1f} s; idle RSS {fp['rss_kib'] / 1024:.1f} MiB "
                         f"(empty daemon {fp['rss_kib_empty'] / 1024:.1f} MiB)"
                         + (f"; {per:.1f} KiB RSS per idle logged-in session "
                            f"({fp['idle_sessions']} sessions)" if per is not None else "")
                         + (f"; goals < 150 MiB with 1,000 LUNs, < 64 KiB per session: "
                            f"{'met' if fp['rss_kib'] < 150 * 1024 else 'not met'}, "
                            f"{'—' if per is None else 'met' if per < 64 else 'not met'}."
                            if n == "pytgt" else "."))
    for n, e in (result.get("start_errors") or {}).items():
        lines += ["", f"{n} could not be started or configured: `{e.splitlines()[0][:400]}`"]
    for n, ca in (result.get("conf_apply") or {}).items():
        if ca.get("error"):
            lines.append(f"targets.conf {n}: error: {ca['error'].splitlines()[0][:300]}")
        else:
            tool = "pytgt-admin" if n == "pytgt" else "tgt-admin"
            goal = (f" (goal < 10 s: {'met' if ca['apply_s'] < 10 else 'not met'})"
                    if n == "pytgt" else "")
            lines.append(f"targets.conf {n}: `{tool} -e` of {ca['targets']} targets (one null "
                         f"LUN each) in {ca['apply_s']:.1f} s{goal}; "
                         f"{ca['targets_running']} running after; RSS "
                         f"{ca['rss_kib'] / 1024:.1f} MiB.")
    errors = [(wn, n, e) for wn, w in result["workloads"].items()
              for n, es in w["errors"].items() for e in es]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {wn} / {n}: `{e.splitlines()[0][:300]}`" for wn, n, e in errors]
    return "\n".join(lines) + "\n"


def write_chart(result: dict[str, Any], path: Path) -> Path | None:
    """Bars of each target's median normalised to tgt (=1); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names: list[str] = result["environment"]["targets"]
    base = "tgt" if "tgt" in names else names[0]
    rows = [(k, w) for k, w in result["workloads"].items() if w["median"].get(base)]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.5))
    height = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = []
        for _, w in rows:
            v, b = w["median"].get(n), w["median"][base]
            rel = (v / b if w["higher_is_better"] else b / v) if v else 0.0
            vals.append(rel)
        bars = ax.barh([j + i * height for j in range(len(rows))], vals, height=height, label=n)
        if n != base:
            ax.bar_label(bars, labels=[f"{v:.2f}" if v else "—" for v in vals], padding=2,
                         fontsize=8)
    ax.set_yticks([j + height * (len(names) - 1) / 2 for j in range(len(rows))])
    ax.set_yticklabels([k for k, _ in rows])
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xlabel(f"relative to {base} (higher is better; latency inverted)")
    ax.set_title(f"pytgt vs tgt — {result['environment']['date']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
