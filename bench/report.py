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
    cap = b4["config"]
    slow_deltas, slow_delay = b4["slow_model"]
    lines = [
        f"### B4 stream capacity at a model's pace ({cap['deltas']} deltas {cap['delay_ms']} ms apart from the paced "
        f"model server, its own process on the load core; Agno's OpenAILike model on every side, agno-graphql's own "
        "subclass of it on agno-graphql and `limit, our model`)",
        "",
        f"Capacity: the most concurrent streams (each slot starting its next run as the last ends; runs spread over "
        f"{cap['ramp_seconds']} s, measured over the {cap['measure_seconds']} s after) with p99 lateness "
        f"< {cap['lateness_p99_ms']:.0f} ms, no errors, and p99 stream time within {cap['stream_slack']:.0%} of the "
        f"model's {b4['model_seconds']:.1f} s. Lateness = received − due; start = first chunk due − run asked for.",
        "",
        "| side | capacity | CPU µs / delta | lateness p50 / p99 ms | start p50 / p99 / max ms | stream p99 s "
        "| KiB / stream | KiB / open subscription |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side, d in b4["sides"].items():
        at = d.get("at_capacity") or {}
        lat, start = at.get("lateness_ms") or {}, at.get("start_ms") or {}
        opened = d["open_subscriptions"]
        capacity = f"≥ {d['capacity']}" if d.get("capped") else str(d["capacity"])  # the setup or max_streams
        lines.append(
            f"| {side} | {capacity} | {_n(at.get('cpu_us_per_delta'))} | {_n(lat.get('p50'), 1)} / "
            f"{_n(lat.get('p99'), 1)} | {_n(start.get('p50'))} / {_n(start.get('p99'))} / {_n(start.get('max'))} "
            f"| {_n((at.get('stream_seconds') or {}).get('p99'), 2)} | {_n(at.get('memory_per_stream_kib'), 1)} "
            f"| {_n(opened['memory_per_stream_kib'], 1)} ({_n(opened.get('most_open_at_once'))} runs streaming "
            f"at once, {opened['errors']} errors) |"
        )
    lines += [
        "",
        "Levels tried, in order:",
        "",
        "| side | streams | result | lateness p99 ms | stream p99 s "
        "| start p99 ms | CPU µs / delta | model server p99 ms | load core busy |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for side, d in b4["sides"].items():
        for level in d["levels"]:
            lines.append(
                f"| {side} | {level['streams']} | {level['why']} | {_n(level['lateness_p99_ms'], 1)} "
                f"| {_n(level['stream_p99_s'], 2)} | {_n(level['start_p99_ms'])} | {_n(level['cpu_us_per_delta'])} "
                f"| {_n(level['model_server_p99_ms'], 1)} | {_n(level.get('load_core_busy'), 2)} |"
            )
    r = b4["ratios"]
    ours = b4["sides"].get("agno-graphql", {})
    opened = ours.get("open_subscriptions", {})
    lines += [
        "",
        f"Open subscriptions: {opened.get('streams')} at once on the slow model ({slow_deltas} deltas {slow_delay} ms "
        "apart), memory = peak − baseline RSS of the serving process, per subscription.",
        "",
        "The limits are Agno's own `arun` in process (no GraphQL, socket or database): `limit` on Agno's OpenAILike, "
        "`limit, our model` on agno-graphql's model (the same model path as the agno-graphql side, so what the "
        f"server adds is read against it). Against Agno's own path: capacity **{_x(r.get('vs_agno_limit_capacity'))}**"
        f", CPU per delta {_n(r.get('cpu_us_per_delta_over_agno_limit'))} µs over.",
        "",
        f"Targets: our CPU per delta over the limit's **{_n(r['our_cpu_us_per_delta_over_limit'])} µs** (< 100: "
        f"{_verdict(r['our_cpu_us_per_delta_over_limit'], 100, higher_is_better=False)}); capacity / limit "
        f"**{_x(r['vs_limit_capacity'])}** (≥ 0.75x: {_verdict(r['vs_limit_capacity'], 0.75)}); capacity / AgentOS "
        f"**{_x(r['vs_agentos_capacity'])}** (> 1x: {_verdict(r['vs_agentos_capacity'], 1.0001)}); start p99 at "
        f"capacity **{_n(r['start_p99_ms_at_capacity'])} ms** (< 100: "
        f"{_verdict(r['start_p99_ms_at_capacity'], 100, higher_is_better=False)}); memory per open subscription "
        f"**{_n(opened.get('memory_per_stream_kib'), 1)} KiB** (< 100: "
        f"{_verdict(opened.get('memory_per_stream_kib'), 100, higher_is_better=False)}); two workers / one: "
        f"{_x(r['two_workers_vs_one_capacity'])} (unpinned, sharing the 2 cores with the load generator and the "
        "model server).",
        "",
    ]
    return lines
