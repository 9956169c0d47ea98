"""The report: one markdown table per scenario, every ratio, the machine and versions."""

from __future__ import annotations

from typing import Any


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _x(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}x"


def _verdict(value: Any, target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "–"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "NOT met"


def markdown(report: dict[str, Any], command: str) -> str:
    m = report["machine"]
    config = report["config"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    load_start = ", ".join(f"{x:.2f}" for x in m["load_average_start"])
    load_end = ", ".join(f"{x:.2f}" for x in m.get("load_average_end", ()))
    pinned = "yes" if report["pinning"] else "NO (taskset missing or one core)"
    seeded = "reused" if report["seed"]["reused"] else "fresh"
    lines = [
        f"Run {m['date_utc']} UTC: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}; {m['mariadb']}; "
        f"load average at start {load_start}, at end {load_end}.",
        f"Versions: {versions}.",
        f"Servers pinned to core 0, load generators to core 1: {pinned}; one uvicorn worker each. "
        f"Seed: {seeded} ({report['seed']['seconds']} s).",
        f"Rounds: {config['rounds']} (sides alternate order), {config['duration']} s each after {config['warmup']} s "
        f"warm-up, concurrency {config['concurrency']}; figures are medians over rounds.",
        "",
    ]
    if "B1" in report:
        lines += _b1(report["B1"])
    if "B2" in report:
        lines += _b2(report["B2"])
    if "B3" in report:
        lines += _b3(report["B3"])
    if "B4" in report:
        lines += _b4(report["B4"])
    return "\n".join(lines)


def _b1(b1: dict[str, Any]) -> list[str]:
    lines = [
        "### B1 list sessions (one page of 20, newest first)",
        "",
        "| side | req/s | p50 ms | p99 ms | bytes | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for side, d in b1["sides"].items():
        lines.append(
            f"| {side} | {_n(d['requests_per_second'])} | {_n(d['latency_ms']['p50'], 1)} "
            f"| {_n(d['latency_ms']['p99'], 1)} | {_n(d['response_bytes'])} | {d['errors']} |"
        )
    r = b1["ratios"]
    lines += [
        "",
        f"agno-graphql / AgentOS: **{_x(r['vs_agentos_rps'])}** (target ≥ 5x: {_verdict(r['vs_agentos_rps'], 5)}); "
        f"agno-graphql / limit: **{_x(r['vs_limit_rps'])}** (target ≥ 0.5x: {_verdict(r['vs_limit_rps'], 0.5)}); "
        f"the page by hash / as text: {_x(r.get('by_hash_vs_text_rps'))}",
        "",
    ]
    return lines


def _b2(b2: dict[str, Any]) -> list[str]:
    lines = [
        "### B2 history (newest 50 messages vs AgentOS's session runs)",
        "",
        "| runs in session | side | req/s | p50 ms | p99 ms | bytes | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size, sides in b2["by_runs"].items():
        for side, d in sides.items():
            lines.append(
                f"| {size} | {side} | {_n(d['requests_per_second'])} | {_n(d['latency_ms']['p50'], 1)} "
                f"| {_n(d['latency_ms']['p99'], 1)} | {_n(d['response_bytes'])} | {d['errors']} |"
            )
    lines.append("")
    for name, value in b2["ratios"].items():
        target = ""
        if name.startswith("vs_agentos"):
            target = f" (target ≥ 20x: {_verdict(value, 20)})"
        elif name.startswith("ours_p50"):
            target = f" (target ≤ 1.5x: {_verdict(value, 1.5, higher_is_better=False)})"
        lines.append(f"- {name}: **{_x(value)}**{target}")
    lines.append("")
    return lines


def _b3(b3: dict[str, Any]) -> list[str]:
    lines = [
        f"### B3 streaming overhead (one run of {b3['deltas_per_run']} deltas, no model delay)",
        "",
        "| side | deltas/s | first event ms | first delta ms | run s |",
        "|---|---:|---:|---:|---:|",
    ]
    for side, d in b3["sides"].items():
        lines.append(
            f"| {side} | {_n(d['deltas_per_second'])} | {_n(d['first_event_ms'], 2)} | {_n(d['first_delta_ms'], 2)} "
            f"| {_n(d['seconds'], 3)} |"
        )
    r = b3["ratios"]
    lines += [
        "",
        f"Errors: {b3['errors']}. agno-graphql / AgentOS SSE deltas/s: **{_x(r['vs_agentos_deltas_per_second'])}** "
        f"(target ≥ 3x: {_verdict(r['vs_agentos_deltas_per_second'], 3)}); agno-graphql / in-process (events): "
        f"**{_x(r['vs_in_process_deltas_per_second'])}** "
        f"(target ≥ 0.25x: {_verdict(r['vs_in_process_deltas_per_second'], 0.25)}); "
        f"first event vs in-process: **{_x(r['first_event_vs_in_process'])}** "
        f"(target ≤ 3x: {_verdict(r['first_event_vs_in_process'], 3, higher_is_better=False)}); "
        f"AgentOS first event vs in-process: {_x(r['agentos_first_event_vs_in_process'])}.",
        "",
    ]
    return lines


def _b4(b4: dict[str, Any]) -> list[str]:
    res = b4["result"]
    lat = res["added_latency_ms"]
    bg = b4["background_b1"]
    return [
        f"### B4 many streams ({b4['streams']} subscriptions × {b4['deltas_per_stream']} deltas "
        f"at {b4['model_delay_ms']} ms, started over {b4.get('ramp_seconds', 0)} s, with B1 traffic alongside)",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| subscriptions opened | {res['opened']} |",
        f"| deltas received / expected | {res['deltas']} / {res['expected_deltas']} |",
        f"| added latency per delta p50 / p90 / p99 / max ms | {_n(lat['p50'], 1)} / {_n(lat['p90'], 1)} / "
        f"{_n(lat['p99'], 1)} / {_n(lat['max'], 1)} |",
        f"| errors | {res['errors']} |",
        f"| server memory per open subscription KiB | {_n(b4['memory_per_subscription_kib'], 1)} |",
        f"| server RSS baseline / peak MiB | {_n(b4['server_baseline_rss_mib'], 1)} "
        f"/ {_n(b4['server_peak_rss_mib'], 1)} |",
        f"| server CPU busy (cores) | {_n(b4['server_cpu_busy'], 2)} |",
        f"| server CPU per delta µs (B1 traffic and run start/end included) "
        f"| {_n((b4['server_cpu_ms_per_delta'] or 0) * 1000, 1)} |",
        f"| streams' wall time s (model alone: {b4['deltas_per_stream'] * b4['model_delay_ms'] / 1000:.1f}) | "
        f"{_n(res['run_seconds'], 2)} |",
        f"| B1 alongside: req/s, p50 ms, errors | {_n(bg.get('requests_per_second'))}, "
        f"{_n((bg.get('latency_ms') or {}).get('p50'), 1)}, {bg.get('errors')} |",
        "",
        f"Targets: p99 added latency < 50 ms: {_verdict(lat['p99'], 50, higher_is_better=False)}; no errors: "
        f"{'met' if res['errors'] == 0 else 'NOT met'}; < 100 KiB per subscription: "
        f"{_verdict(b4['memory_per_subscription_kib'], 100, higher_is_better=False)}.",
        "",
    ]
