"""Server memory of an attachment: `python -m bench.attachments [--megabytes 20] [--rounds 3] [--database-url URL]`.

One `agno-graphql serve` process (the built-in agents, the offline demo model) and, per round: a PNG of about
`--megabytes` MiB of random pixels (stored, not compressible) uploaded with `uploadAttachment` over the GraphQL
multipart request spec, then a `runAgent` run of the assistant carrying it, followed over graphql-sse to its
terminal event. The server's RSS (its children's included) is sampled every 10 ms from a thread, and the kernel's
high-water mark (VmHWM, reset through /proc/PID/clear_refs before each step) catches a spike shorter than that.
The uploads come first, then the runs (each with its round's image). Each step is reported as peak - baseline (the
RSS after a warm-up upload and run of a small PNG, taken once before the first round) and as the RSS left once it
settled. The client streams the file from disk; the server's spooled copy is watched through its open files in
TMPDIR (disk, not RSS). See BENCHMARKS.md, "Attachments: server memory".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from sqlalchemy.engine import make_url

from bench import seed as seeding
from bench.harness import REPO, SECRET, Bench, BenchConfig, Server, log, machine_info, token
from bench.report import _n
from bench.stats import median, ratio

MIB = 1024 * 1024
USER = "bench-attachments"
UPLOAD = (
    "mutation Upload($input: UploadAttachmentInput!) { uploadAttachment(input: $input) "
    "{ attachment { id name mimeType byteSize kind width height } } }"
)
RUN_AGENT = (
    "subscription Run($input: RunAgentInput!) { runAgent(input: $input) { __typename runId sessionId index "
    "... on RunCompleted { content } ... on RunFailed { message code } ... on RunCancelled { reason } } }"
)
TERMINAL = {"RunCompleted", "RunFailed", "RunCancelled"}
PNG_WIDTH = 1024
VERSIONS = ("agno", "strawberry-graphql", "starlette", "python-multipart", "uvicorn", "pillow", "httpx")
T = TypeVar("T")


@dataclass(frozen=True)
class AttachmentBenchConfig:
    megabytes: float = 20.0
    rounds: int = 3
    database_url: str = ""  # empty: SQLite in the run's temporary folder
    out_dir: Path = REPO / "bench" / "results"
    sample_seconds: float = 0.01
    settle_seconds: float = 2.0
    message: str = "What is in this picture?"
    # The offline demo model by default; or AGNO_GRAPHQL_MODEL and _MODEL_BASE_URL for an OpenAI-compatible server,
    # to which Agno sends the image base64-encoded inside the JSON request.
    model: str = ""
    model_base_url: str = ""


# -- the file -------------------------------------------------------------------------------------


def write_random_png(path: Path, target_bytes: int) -> tuple[int, int]:
    """A genuine PNG of random RGB pixels, `PNG_WIDTH` wide and about `target_bytes` long: deflate level 0
    (stored blocks), so the file is as large as its pixels and compresses no further on the way. Written row by
    row, never held whole. Its (width, height)."""
    row_bytes = 1 + 3 * PNG_WIDTH  # the filter byte (0, none), then the pixels
    height = max(1, round(target_bytes / row_bytes))
    deflate = zlib.compressobj(0)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        _png_chunk(out, b"IHDR", PNG_WIDTH.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0]))
        pixels = bytearray()
        for _ in range(height):
            pixels += b"\x00" + os.urandom(3 * PNG_WIDTH)
            if len(pixels) >= MIB:
                _png_chunk(out, b"IDAT", deflate.compress(bytes(pixels)))
                pixels.clear()
        _png_chunk(out, b"IDAT", deflate.compress(bytes(pixels)) + deflate.flush())
        _png_chunk(out, b"IEND", b"")
    return PNG_WIDTH, height


def _png_chunk(out: Any, kind: bytes, data: bytes) -> None:
    if not data and kind == b"IDAT":
        return
    out.write(len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big"))


# -- the server's memory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What one step cost the server: its RSS peak (sampled and the kernel's high-water mark), what was left once
    it settled, the bytes of its open files in TMPDIR (at the start, at most, once settled); wall and server CPU
    seconds."""

    peak_rss: int
    high_water_rss: int | None
    settled_rss: int
    spooled_before: int
    spooled_peak: int
    spooled_settled: int
    seconds: float
    cpu_seconds: float


class MemoryWatch:
    """Samples a process's RSS (with its children's) and the bytes of its open files under `spool_dir` from a
    thread, every `interval` seconds, until stopped."""

    def __init__(self, process: psutil.Process, spool_dir: Path, interval: float, settle_seconds: float) -> None:
        self.process = process
        self.settle_seconds = settle_seconds
        self.spool_dir = str(spool_dir)
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic time, rss, spooled bytes)
        self._children: list[psutil.Process] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        refreshed = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - refreshed > 1.0:  # listing children scans /proc: once a second is enough
                with contextlib.suppress(psutil.Error):
                    self._children = self.process.children(recursive=True)
                refreshed = now
            with contextlib.suppress(psutil.Error, OSError):
                self.samples.append((now, self.rss(), self.spooled()))
            self._stop.wait(self.interval)

    def rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self._children:
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return int(total)

    def spooled(self) -> int:
        """Bytes of the files the server holds open in TMPDIR (unlinked temporary files: not in any listing)."""
        fd_dir = f"/proc/{self.process.pid}/fd"
        total = 0
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                if os.readlink(f"{fd_dir}/{fd}").startswith(self.spool_dir):
                    total += os.stat(f"{fd_dir}/{fd}").st_size
        return total

    def reset_high_water(self) -> bool:
        """Reset the kernel's peak RSS of the process (Linux 4.0+); False where that is not allowed."""
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    def high_water(self) -> int | None:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return None

    def between(self, start: float, end: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if start <= s[0] <= end]

    def settled(self) -> int:
        """The median RSS over the last half second of a `settle_seconds` wait."""
        start = time.monotonic()
        time.sleep(self.settle_seconds)
        recent = [rss for _, rss, _ in self.between(max(start, time.monotonic() - 0.5), time.monotonic())]
        return int(median(recent) or self.rss())

    def step(self, action: Callable[[], T]) -> tuple[T, Step]:
        """Run `action` and wait for the server to settle; what it cost."""
        can_reset = self.reset_high_water()
        spooled_before = self.spooled()
        cpu_before = self.process.cpu_times()
        start = time.monotonic()
        result = action()
        seconds = time.monotonic() - start
        settled = self.settled()
        cpu_after = self.process.cpu_times()
        samples = self.between(start, time.monotonic())
        step = Step(
            peak_rss=max((rss for _, rss, _ in samples), default=settled),
            high_water_rss=self.high_water() if can_reset else None,
            settled_rss=settled,
            spooled_before=spooled_before,
            spooled_peak=max((spooled for _, _, spooled in samples), default=0),
            spooled_settled=self.spooled(),
            seconds=seconds,
            cpu_seconds=(cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        )
        return result, step


# -- the client ----------------------------------------------------------------------------------------


class Client:
    """What a frontend sends: uploads as multipart requests, runs over graphql-sse (distinct connections)."""

    def __init__(self, server: Server) -> None:
        self.url = f"{server.base}/graphql"
        self.headers = {"Authorization": f"Bearer {token(USER)}"}
        self.http = httpx.Client(timeout=httpx.Timeout(300))

    def close(self) -> None:
        self.http.close()

    def upload(self, path: Path, content_type: str) -> dict[str, Any]:
        """The Attachment; the file goes out from disk in httpx's 64 KiB chunks, never whole in memory."""
        operations = {"query": UPLOAD, "variables": {"input": {"file": None}}}
        data = {"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.input.file"]})}
        with path.open("rb") as file:
            response = self.http.post(
                self.url, headers=self.headers, data=data, files={"0": (path.name, file, content_type)}
            )
        body = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"upload of {path.name} failed: HTTP {response.status_code} {json.dumps(body)[:500]}")
        return dict(body["data"]["uploadAttachment"]["attachment"])

    def run(self, message: str, attachment_ids: list[str]) -> list[dict[str, Any]]:
        """Every event of a new session's run, up to its terminal one."""
        variables = {"input": {"agentId": "assistant", "message": message, "attachments": attachment_ids}}
        headers = {**self.headers, "Accept": "text/event-stream"}
        events: list[dict[str, Any]] = []
        body = {"query": RUN_AGENT, "variables": variables}
        with self.http.stream("POST", self.url, json=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"runAgent failed: HTTP {response.status_code} {response.read()[:500]!r}")
            for line in response.iter_lines():
                if not line.startswith("data:") or not line.removeprefix("data:").strip():
                    continue
                result = json.loads(line.removeprefix("data:"))
                if result.get("errors"):
                    raise RuntimeError(f"runAgent failed: {json.dumps(result['errors'])[:500]}")
                events.append(result["data"]["runAgent"])
                if events[-1]["__typename"] in TERMINAL:
                    break
        return events


# -- the run -----------------------------------------------------------------------------------------


def _wait_healthy(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{server.base}/healthz", timeout=2) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not answer /healthz in {timeout} s")
        time.sleep(0.1)


def _received_bytes(content: str) -> int | None:
    """How many of the image's bytes the offline model says it received ("..., N bytes received)")."""
    head, found, _ = content.rpartition(" bytes received")
    return int(head.rsplit(" ", 1)[-1]) if found and head.rsplit(" ", 1)[-1].isdigit() else None


def _step_figures(step: Step, baseline: int, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}_peak_delta": step.peak_rss - baseline,
        f"{prefix}_high_water_delta": None if step.high_water_rss is None else step.high_water_rss - baseline,
        f"{prefix}_settled_delta": step.settled_rss - baseline,
        f"{prefix}_spooled": step.spooled_peak - step.spooled_before,
        f"{prefix}_spooled_open_after": step.spooled_settled,
        f"{prefix}_seconds": step.seconds,
        f"{prefix}_cpu_seconds": step.cpu_seconds,
    }


def upload_round(
    watch: MemoryWatch, client: Client, image: Path, size: tuple[int, int], baseline: int
) -> dict[str, Any]:
    attachment, upload = watch.step(lambda: client.upload(image, "image/png"))
    ok = attachment["byteSize"] == image.stat().st_size and (attachment["width"], attachment["height"]) == size
    return {"attachment": attachment, "upload_ok": ok, **_step_figures(upload, baseline, "upload")}


def run_round(watch: MemoryWatch, client: Client, message: str, attachment_id: str, baseline: int) -> dict[str, Any]:
    before = watch.settled()
    events, run = watch.step(lambda: client.run(message, [attachment_id]))
    terminal = events[-1] if events else {}
    return {
        "run_terminal": terminal.get("__typename"),
        "run_events": len(events),
        "model_received_bytes": _received_bytes(str(terminal.get("content") or "")),
        **_step_figures(run, baseline, "run"),
        "run_peak_over_before": run.peak_rss - before,
    }


def _machine(database_url: str) -> dict[str, Any]:
    if database_url.startswith("mysql"):
        info = machine_info(database_url)
    else:
        info = {
            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "load_average_start": os.getloadavg(),
        }
    versions = {}
    for name in VERSIONS:
        with contextlib.suppress(Exception):
            versions[name] = version(name)
    info["versions"] = versions
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def run(config: AttachmentBenchConfig) -> dict[str, Any]:
    bench = Bench(BenchConfig(pin=False))
    spool = bench.state_dir / "spool"
    files = bench.state_dir / "files"
    for folder in (spool, files):
        folder.mkdir()
    database_url = config.database_url or f"sqlite:///{bench.state_dir / 'agno-graphql.db'}"
    if database_url.startswith("mysql"):
        seeding.recreate_database(database_url)
    report: dict[str, Any] = {
        "machine": _machine(database_url),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "database": make_url(database_url).render_as_string(hide_password=True),
    }
    image = files / "random.png"
    width, height = write_random_png(image, int(config.megabytes * MIB))
    small = files / "small.png"
    small_size = write_random_png(small, 64 * 1024)
    report["model"] = (
        f"{config.model or 'stub'} at {config.model_base_url} (OpenAI-compatible)"
        if config.model_base_url
        else config.model or "the offline demo model"
    )
    report["file"] = {"name": image.name, "bytes": image.stat().st_size, "width": width, "height": height}
    env = {
        "AGNO_GRAPHQL_DATABASE_URL": database_url,
        "AGNO_GRAPHQL_STATE_DIR": str(bench.state_dir / "state"),
        "AGNO_GRAPHQL_JWT_SECRET": SECRET,
        "AGNO_GRAPHQL_MAX_ATTACHMENT_BYTES": str(image.stat().st_size + MIB),
        "AGNO_GRAPHQL_LOG_LEVEL": "warning",
        "AGNO_GRAPHQL_GRAPHIQL": "false",
        "TMPDIR": str(spool),
    }
    if config.model_base_url:
        env |= {"AGNO_GRAPHQL_MODEL": config.model or "stub", "AGNO_GRAPHQL_MODEL_BASE_URL": config.model_base_url}
    elif config.model:
        env["AGNO_GRAPHQL_MODEL"] = config.model
    server = bench.spawn("agno-graphql", ["-m", "agno_graphql.cli", "serve", "--port", "{port}"], env)
    client: Client | None = None
    try:
        bench.wait_listening(server)
        _wait_healthy(server)
        client = Client(server)
        with MemoryWatch(server.ps, spool, config.sample_seconds, config.settle_seconds) as watch:
            report["start_rss"] = watch.rss()
            warm = client.upload(small, "image/png")
            warm_events = client.run(config.message, [warm["id"]])
            report["warm_up"] = {"upload_ok": (warm["width"], warm["height"]) == small_size}
            report["warm_up"]["run_terminal"] = warm_events[-1]["__typename"] if warm_events else None
            report["baseline_rss"] = baseline = watch.settled()
            # The uploads first, then the runs: what the allocator keeps after a run (glibc reuses freed heap rather
            # than return it) would otherwise count in the next upload's peak.
            rounds = [upload_round(watch, client, image, (width, height), baseline) for _ in range(config.rounds)]
            for r, figures in enumerate(rounds):
                figures |= run_round(watch, client, config.message, figures["attachment"]["id"], baseline)
                log(f"attachments round {r + 1}: {_round_line(figures)}")
            report["samples"] = len(watch.samples)
            report["rounds"] = rounds
    except BaseException:
        with contextlib.suppress(OSError):
            log(f"server log:\n{(bench.state_dir / 'agno-graphql.log').read_text()[-3000:]}")
        raise
    finally:
        if client is not None:
            client.close()
        bench.stop_all()
    report["medians"] = _medians(report["rounds"], report["file"]["bytes"])
    report["machine"]["load_average_end"] = os.getloadavg()
    return report


def _round_line(figures: dict[str, Any]) -> str:
    return (
        f"upload peak +{figures['upload_peak_delta'] / MIB:.1f} MiB in {figures['upload_seconds']:.2f} s, "
        f"run peak +{figures['run_peak_delta'] / MIB:.1f} MiB, {figures['run_terminal']}"
    )


def _medians(rounds: list[dict[str, Any]], file_bytes: int) -> dict[str, Any]:
    keys = [k for k in rounds[0] if k not in ("attachment", "upload_ok", "run_terminal")]
    medians: dict[str, Any] = {key: median([r[key] for r in rounds]) for key in keys}
    for step in ("upload", "run"):
        medians[f"{step}_peak_over_file"] = ratio(medians[f"{step}_peak_delta"], file_bytes)
        medians[f"{step}_high_water_over_file"] = ratio(medians[f"{step}_high_water_delta"], file_bytes)
    return medians


# -- the report ---------------------------------------------------------------------------------------


def _mib(value: float | None) -> str:
    return _n(None if value is None else value / MIB, 1)


ROWS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("upload: peak RSS - baseline, sampled every 10 ms", "upload_peak_delta", _mib),
    ("upload: peak RSS - baseline, kernel high-water mark", "upload_high_water_delta", _mib),
    ("upload: RSS once settled - baseline", "upload_settled_delta", _mib),
    ("upload: spooled to TMPDIR (disk, not RSS)", "upload_spooled", _mib),
    ("upload: spooled files still open once settled, all uploads so far", "upload_spooled_open_after", _mib),
    ("run with the image: peak RSS - baseline, sampled", "run_peak_delta", _mib),
    ("run with the image: peak RSS - baseline, high-water mark", "run_high_water_delta", _mib),
    ("run with the image: peak RSS - RSS before the run", "run_peak_over_before", _mib),
    ("run with the image: RSS once settled - baseline", "run_settled_delta", _mib),
)
INFO_ROWS: tuple[tuple[str, str, Callable[[float | None], str]], ...] = (
    ("upload wall time s", "upload_seconds", lambda v: _n(v, 2)),
    ("upload server CPU s", "upload_cpu_seconds", lambda v: _n(v, 2)),
    ("run wall time s (to the terminal event)", "run_seconds", lambda v: _n(v, 2)),
    ("run server CPU s", "run_cpu_seconds", lambda v: _n(v, 2)),
    ("image bytes the model received", "model_received_bytes", lambda v: _n(None if v is None else int(v))),
)


def markdown(report: dict[str, Any], command: str) -> str:
    m, f, medians = report["machine"], report["file"], report["medians"]
    file_mib = f["bytes"] / MIB
    load = ", ".join(f"{x:.2f}" for x in m["load_average_start"])
    load_end = ", ".join(f"{x:.2f}" for x in m.get("load_average_end", ()))
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    database = f"{report['database']}" + (f" ({m['mariadb']})" if m.get("mariadb") else "")
    lines = [
        f"Run {m['date_utc']} UTC: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; "
        f"Python {m['python']}; load average at start {load}, at end {load_end}.",
        f"Versions: {versions}. Database: {database}. Model: {report['model']}.",
        f"File: a PNG of random pixels, {f['width']}x{f['height']}, {f['bytes']:,} bytes ({file_mib:.1f} MiB). "
        f"Rounds: {len(report['rounds'])}, the figures are medians; {report['samples']:,} samples of the server's "
        f"RSS (children included) every {report['config']['sample_seconds'] * 1000:.0f} ms.",
        "",
        f"Baseline: the server's RSS after a warm-up upload and run of a 64 KiB PNG, {_mib(report['baseline_rss'])} "
        f"MiB (at start {_mib(report['start_rss'])} MiB).",
        "",
        "| server memory, MiB | median | rounds | / file size |",
        "|---|---:|---|---:|",
    ]
    ratios = {
        "upload_peak_delta": medians["upload_peak_over_file"],
        "upload_high_water_delta": medians["upload_high_water_over_file"],
        "run_peak_delta": medians["run_peak_over_file"],
        "run_high_water_delta": medians["run_high_water_over_file"],
    }
    for label, key, show in ROWS:
        per_round = ", ".join(show(r[key]) for r in report["rounds"])
        share = ratios.get(key)
        lines.append(f"| {label} | {show(medians[key])} | {per_round} | {'' if share is None else f'{share:.2f}'} |")
    lines += ["", "| info | median | rounds |", "|---|---:|---|"]
    for label, key, show in INFO_ROWS:
        per_round = ", ".join(show(r[key]) for r in report["rounds"])
        lines.append(f"| {label} | {show(medians.get(key))} | {per_round} |")
    ok = all(r["upload_ok"] for r in report["rounds"])
    terminals = ", ".join(str(r["run_terminal"]) for r in report["rounds"])
    lines += [
        "",
        f"Uploads accepted with their size and dimensions: {'yes' if ok else 'NO'}; runs ended with: {terminals}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attachments", description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=float, default=AttachmentBenchConfig.megabytes, help="file size in MiB")
    parser.add_argument("--rounds", type=int, default=AttachmentBenchConfig.rounds)
    parser.add_argument(
        "--database-url",
        default="",
        help="default: SQLite in a temporary folder; a mysql+pymysql:// URL's database is dropped and made anew",
    )
    parser.add_argument("--out", type=Path, help="directory for attachments-latest.md and .json (bench/results)")
    parser.add_argument("--settle-seconds", type=float, default=AttachmentBenchConfig.settle_seconds)
    parser.add_argument("--model", default="", help="AGNO_GRAPHQL_MODEL for the server (default: offline)")
    parser.add_argument("--model-base-url", default="", help="OpenAI-compatible server URL (MODEL_BASE_URL)")
    args = parser.parse_args(argv)
    config = AttachmentBenchConfig(
        megabytes=args.megabytes,
        rounds=args.rounds,
        database_url=args.database_url,
        settle_seconds=args.settle_seconds,
        model=args.model,
        model_base_url=args.model_base_url,
        **({"out_dir": args.out} if args.out else {}),
    )
    arguments = argv if argv is not None else sys.argv[1:]
    command = ("python -m bench.attachments " + " ".join(shlex.quote(a) for a in arguments)).strip()
    report = run(config)
    report["command"] = command
    text = markdown(report, command)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / "attachments-latest.md").write_text(text + "\n")
    (config.out_dir / "attachments-latest.json").write_text(json.dumps(report, indent=2, default=str))
    print(text)
    ok = all(r["upload_ok"] and r["run_terminal"] == "RunCompleted" for r in report["rounds"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
