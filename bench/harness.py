"""The benchmark run: seed, start the three servers pinned to one core, drive them from the other.

Scenarios (see BENCHMARKS.md): B1 list sessions, B2 history at 10/100/1,000 runs, B3 one fast
stream (servers vs in-process), B4 stream capacity at a real model's pace: the paced model server in its own
process on the load core, Agno's OpenAILike model against it on every side (bench/capacity.py). Rounds
alternate the order of the sides; each figure is the median over rounds; ratios are taken of the medians.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import psutil

from bench import seed as seeding
from bench.agents import (
    ENV_FAST_DELTAS,
    ENV_MODEL_DELAY_MS,
    ENV_MODEL_DELTAS,
    ENV_MODEL_URL,
    FAST_AGENT,
    MODEL_AGENT,
    MODEL_SLOW_AGENT,
    SLOW_DELAY_MS,
    SLOW_DELTAS,
    bench_agents,
)
from bench.capacity import CapacityConfig, measured, search
from bench.stats import median, ratio

REPO = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
SERVER_CORE, LOAD_CORE = "0", "1"
MODEL_SERVER = "paced-model"
TWO_WORKERS = "agno-graphql x2"
# The in-process limits: Agno's own `arun` on Agno's OpenAILike, and on agno-graphql's model (CompatibleModel, as
# agno-graphql serves it): our own cost per delta is read against the second, the same model path.
LIMIT, LIMIT_OURS = "limit", "limit, our model"
LIMITS = {LIMIT: [], LIMIT_OURS: ["served"]}
B4_SIDES = ("agno-graphql", "agentos", LIMIT, LIMIT_OURS, TWO_WORKERS)

SESSIONS_QUERY = (
    "query Sessions { sessions(first: 20) { nodes { id name agentId createdAt updatedAt } "
    "pageInfo { hasNextPage endCursor } } }"
)
AGENTOS_ORDER = "sort_by=updated_at&sort_order=desc"
# B1's page query sent by its hash alone (automatic persisted queries), registered in the warm-up.
BY_HASH = "agno-graphql by hash"
MESSAGES_QUERY = (
    "query History($id: ID!) { session(id: $id) { messages(last: 50) { nodes { id runId role content createdAt } "
    "pageInfo { hasPreviousPage startCursor } } } }"
)


@dataclass(frozen=True)
class BenchConfig:
    database_url: str = "mysql+pymysql://root@127.0.0.1:3306/agql_bench"
    plan: seeding.SeedPlan = field(default_factory=seeding.SeedPlan)
    rounds: int = 5
    duration: float = 5.0
    warmup: float = 1.0
    concurrency: int = 16
    fast_deltas: int = 2000
    stream_runs: int = 4  # per round and side; the first of each batch is a warm-up
    streams: int = 500  # B4's open subscriptions, for the memory each costs
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    two_workers: bool = True  # B4 also on agno-graphql --workers 2 behind Redis
    redis_url: str = "redis://127.0.0.1:6379/13"
    pin: bool = True
    out_dir: Path = REPO / "bench" / "results"
    drop_database: bool = False
    scenarios: tuple[str, ...] = ("B1", "B2", "B3", "B4")


SMALL = BenchConfig(
    plan=seeding.SeedPlan(users=4, sessions=200, runs_per_session=2, history_runs=(10, 40)),
    rounds=2,
    duration=0.3,
    warmup=0.1,
    concurrency=4,
    fast_deltas=100,
    stream_runs=2,
    streams=20,
    capacity=CapacityConfig(deltas=20, delay_ms=10, start=2, max_streams=4, ramp_seconds=0.2, measure_seconds=0.6),
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token(user_id: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + 6 * 3600}, SECRET, algorithm="HS256")


def _pinned(core: str, command: list[str], pin: bool) -> list[str]:
    if pin and shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core, *command]
    return command


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.state_dir = Path(tempfile.mkdtemp(prefix="agql-bench-"))
        self.servers: dict[str, Server] = {}
        self.load_workers: dict[str, subprocess.Popen[str]] = {}
        # BENCH_SERVER_SOURCE: a directory holding another `agno_graphql` package (an exported commit) to measure
        # instead of the working tree's.
        source = [os.environ["BENCH_SERVER_SOURCE"]] if os.environ.get("BENCH_SERVER_SOURCE") else []
        self.model_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([*source, str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "AGNO_TELEMETRY": "false",
            ENV_FAST_DELTAS: str(config.fast_deltas),
            ENV_MODEL_URL: f"http://127.0.0.1:{self.model_port}/v1",
            ENV_MODEL_DELTAS: str(config.capacity.deltas),
            ENV_MODEL_DELAY_MS: str(config.capacity.delay_ms),
        }

    # -- processes -------------------------------------------------------------------------------

    def spawn(
        self, name: str, module_args: list[str], extra_env: dict[str, str] | None = None, port: int | None = None
    ) -> Server:
        port = port or free_port()
        # Started on any core (three imports at once start faster), pinned once listening (pin_servers).
        command = [sys.executable, *(a.replace("{port}", str(port)) for a in module_args)]
        with open(self.state_dir / f"{name}.log", "wb") as logfile:
            process = subprocess.Popen(
                command,
                cwd=self.state_dir,
                env={**self.env, **(extra_env or {})},
                stdout=logfile,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, port, process)
        self.servers[name] = server
        return server

    def wait_listening(self, server: Server, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if server.process.poll() is not None:
                output = (self.state_dir / f"{server.name}.log").read_text()[-3000:]
                raise RuntimeError(f"{server.name} exited: {output}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                log(f"{server.name} on port {server.port} (pid {server.process.pid})")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not start in {timeout} s")
            time.sleep(0.1)

    def start_all(self) -> None:
        """The three servers, started together (each imports for a few seconds), each on the server core; the paced
        model server on the load core; with `two_workers`, agno-graphql on two workers behind Redis, unpinned."""
        url = self.config.database_url
        ours = {
            "AGNO_GRAPHQL_DATABASE_URL": url,
            "AGNO_GRAPHQL_JWT_SECRET": SECRET,
            "AGNO_GRAPHQL_AGENTS": "bench.agents:served_agents",
            "AGNO_GRAPHQL_LOG_LEVEL": "warning",
            "AGNO_GRAPHQL_STATE_DIR": str(self.state_dir / "state"),
            "AGNO_GRAPHQL_GRAPHIQL": "false",
        }
        self.spawn("agno-graphql", ["-m", "agno_graphql.cli", "serve", "--port", "{port}"], ours)
        self.spawn("agentos", ["-m", "bench.agentos_app", url, "{port}"])
        self.spawn("limit", ["-m", "bench.limit_app", url, "{port}"])
        self.spawn(MODEL_SERVER, ["-m", "bench.paced_model", "{port}"], port=self.model_port)
        if self.config.two_workers and "B4" in self.config.scenarios:
            two = {**ours, "AGNO_GRAPHQL_REDIS_URL": self.config.redis_url}
            self.spawn(TWO_WORKERS, ["-m", "agno_graphql.cli", "serve", "--port", "{port}", "--workers", "2"], two)
        for server in self.servers.values():
            self.wait_listening(server)
        self.pin_servers()

    def pin_servers(self) -> None:
        """Every thread of every server onto the server core, as `taskset -c` at start would have."""
        if not (self.config.pin and shutil.which("taskset") and (os.cpu_count() or 1) > 1):
            return
        for server in self.servers.values():
            if server.name == TWO_WORKERS:
                continue
            core = LOAD_CORE if server.name == MODEL_SERVER else SERVER_CORE
            subprocess.run(
                ["taskset", "-a", "-p", "-c", core, str(server.process.pid)], check=True, capture_output=True
            )

    def stop_all(self) -> None:
        for worker in self.load_workers.values():
            if worker.stdin is not None:
                worker.stdin.close()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        for server in self.servers.values():
            if server.process.poll() is None:
                server.process.terminate()
        for server in self.servers.values():
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def load(self, mode: str, spec: dict[str, Any], worker: str = "main") -> dict[str, Any]:
        """One measurement by a load generator process (started once per worker name, pinned to the load core)."""
        return self.ask(worker, [sys.executable, "-m", "bench.load", "serve"], {"mode": mode, "spec": spec})

    def worker(self, name: str, command: list[str], core: str = LOAD_CORE) -> subprocess.Popen[str]:
        """A process answering one JSON line per JSON line, started once per name, pinned to `core`."""
        process = self.load_workers.get(name)
        if process is None or process.poll() is not None:
            process = subprocess.Popen(
                _pinned(core, command, self.config.pin),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=self.env,
                cwd=REPO,
                text=True,
            )
            self.load_workers[name] = process
        return process

    def ask(self, name: str, command: list[str], request: dict[str, Any], core: str = LOAD_CORE) -> dict[str, Any]:
        process = self.worker(name, command, core)
        mode = request.get("mode", name)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited (code {process.wait(timeout=10)})")
        answer = json.loads(line)
        if "failure" in answer:
            raise RuntimeError(f"load generator {mode} failed: {answer['failure']}")
        return dict(answer["result"])

    def warm_up(self, users: list[str], history: dict[int, str]) -> None:
        """One request of each kind to each side: first requests pay for lazy imports and new connections. The
        page query is registered as a persisted query first, as a client's first request does."""
        requests = [[self.graphql(SESSIONS_QUERY, users[0], persisted="register")]]
        requests += self.b1_requests(users[:1]).values()
        for session_id in history.values():
            requests += self.b2_requests(session_id).values()
        for specs in requests:
            spec = {"requests": specs[:1], "concurrency": 1, "duration": 0.2, "warmup": 0}
            self.load("http", spec)

    # -- request specs -----------------------------------------------------------------------------

    def graphql(
        self, query: str, user: str, variables: dict[str, Any] | None = None, persisted: str = ""
    ) -> dict[str, Any]:
        """A POST of the query; `persisted`: "hash" sends its hash alone (a persisted query), "register" both."""
        body: dict[str, Any] = {"query": query, "variables": variables or {}}
        if persisted:
            sha256 = hashlib.sha256(query.encode()).hexdigest()
            body["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
            if persisted == "hash":
                del body["query"]
        return {
            "method": "POST",
            "url": f"{self.servers['agno-graphql'].base}/graphql",
            "headers": {"Authorization": f"Bearer {token(user)}", "Content-Type": "application/json"},
            "body": json.dumps(body),
        }

    def b1_requests(self, users: list[str]) -> dict[str, list[dict[str, Any]]]:
        agentos, limit = self.servers["agentos"].base, self.servers["limit"].base
        return {
            "agno-graphql": [self.graphql(SESSIONS_QUERY, u) for u in users],
            BY_HASH: [self.graphql(SESSIONS_QUERY, u, persisted="hash") for u in users],
            "agentos": [
                {"method": "GET", "url": f"{agentos}/sessions?type=agent&user_id={quote(u)}&limit=20&{AGENTOS_ORDER}"}
                for u in users
            ],
            "limit": [{"method": "GET", "url": f"{limit}/sessions?user_id={quote(u)}&limit=20"} for u in users],
        }

    def b2_requests(self, session_id: str) -> dict[str, list[dict[str, Any]]]:
        user = seeding.HISTORY_USER
        agentos, limit = self.servers["agentos"].base, self.servers["limit"].base
        return {
            "agno-graphql": [self.graphql(MESSAGES_QUERY, user, {"id": session_id})],
            "agentos": [{"method": "GET", "url": f"{agentos}/sessions/{session_id}/runs?type=agent&user_id={user}"}],
            "limit": [{"method": "GET", "url": f"{limit}/messages?session_id={session_id}&last=50"}],
        }

    # -- scenarios -------------------------------------------------------------------------------

    def http_rounds(self, requests: dict[str, list[dict[str, Any]]], label: str) -> dict[str, Any]:
        sides = list(requests)
        rounds: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
        for r in range(self.config.rounds):
            for side in sides if r % 2 == 0 else list(reversed(sides)):
                spec = {
                    "requests": requests[side],
                    "concurrency": self.config.concurrency,
                    "duration": self.config.duration,
                    "warmup": self.config.warmup,
                    "graphql": side.startswith("agno-graphql"),
                }
                result = self.load("http", spec)
                rounds[side].append(result)
                log(
                    f"{label} round {r + 1} {side}: {result['requests_per_second']:.0f} req/s, "
                    f"p50 {result['latency_ms']['p50'] or 0:.1f} ms, errors {result['errors']}"
                )
        return {side: _http_medians(results) for side, results in rounds.items()}

    def b1(self, users: list[str]) -> dict[str, Any]:
        result = self.http_rounds(self.b1_requests(users), "B1")
        ours, agentos, limit = result["agno-graphql"], result["agentos"], result["limit"]
        return {
            "sides": result,
            "ratios": {
                "vs_agentos_rps": ratio(ours["requests_per_second"], agentos["requests_per_second"]),
                "vs_limit_rps": ratio(ours["requests_per_second"], limit["requests_per_second"]),
                "by_hash_vs_text_rps": ratio(result[BY_HASH]["requests_per_second"], ours["requests_per_second"]),
            },
        }

    def b2(self, history: dict[int, str]) -> dict[str, Any]:
        by_size = {}
        for runs, session_id in sorted(history.items()):
            by_size[str(runs)] = self.http_rounds(self.b2_requests(session_id), f"B2 {runs} runs")
        sizes = sorted(history)
        smallest, largest = str(sizes[0]), str(sizes[-1])

        def p50(side: str, size: str) -> float | None:
            return by_size[size][side]["latency_ms"]["p50"]

        return {
            "by_runs": by_size,
            "ratios": {
                f"vs_agentos_rps_at_{largest}": ratio(
                    by_size[largest]["agno-graphql"]["requests_per_second"],
                    by_size[largest]["agentos"]["requests_per_second"],
                ),
                f"vs_limit_rps_at_{largest}": ratio(
                    by_size[largest]["agno-graphql"]["requests_per_second"],
                    by_size[largest]["limit"]["requests_per_second"],
                ),
                f"ours_p50_{largest}_over_{smallest}": ratio(
                    p50("agno-graphql", largest), p50("agno-graphql", smallest)
                ),
                f"agentos_p50_{largest}_over_{smallest}": ratio(p50("agentos", largest), p50("agentos", smallest)),
            },
        }

    def b3(self) -> dict[str, Any]:
        runs = self.config.stream_runs
        deltas = self.config.fast_deltas
        collected: dict[str, list[dict[str, Any]]] = {
            "agno-graphql": [],
            "agentos": [],
            "in-process": [],
            "in-process-content-only": [],
        }
        errors: dict[str, int] = {"agno-graphql": 0, "agentos": 0, "in-process": 0}
        samples: list[str] = []
        ws_url = f"ws://127.0.0.1:{self.servers['agno-graphql'].port}/graphql"
        sse_url = f"{self.servers['agentos'].base}/agents/{FAST_AGENT}/runs"
        inprocess_command = _pinned(SERVER_CORE, [sys.executable, "-m", "bench.inprocess"], self.config.pin)
        for r in range(self.config.rounds):
            sides = ["agno-graphql", "agentos", "in-process"]
            for side in sides if r % 2 == 0 else list(reversed(sides)):
                if side == "agno-graphql":
                    spec = {
                        "url": ws_url,
                        "token": token(seeding.STREAM_USER),
                        "agent": FAST_AGENT,
                        "runs": runs,
                        "deltas": deltas,
                    }
                    result = self.load("ws-run", spec)
                    collected[side] += result["runs"][1:]
                elif side == "agentos":
                    spec = {"url": sse_url, "user_id": seeding.STREAM_USER, "runs": runs, "deltas": deltas}
                    result = self.load("sse-run", spec)
                    collected[side] += result["runs"][1:]
                else:
                    spec = {
                        "database_url": self.config.database_url,
                        "agent": FAST_AGENT,
                        "runs": runs,
                        "deltas": deltas,
                    }
                    done = subprocess.run(
                        inprocess_command,
                        input=json.dumps(spec).encode(),
                        capture_output=True,
                        env=self.env,
                        cwd=self.state_dir,
                        timeout=600,
                    )
                    if done.returncode != 0:
                        raise RuntimeError(f"in-process run failed: {done.stderr.decode()[-3000:]}")
                    result = json.loads(done.stdout)
                    collected["in-process"] += result["events"][1:]
                    collected["in-process-content-only"] += result["content_only"][1:]
                errors[side] += int(result["errors"])
                samples += result.get("error_samples", [])
                log(f"B3 round {r + 1} {side}: errors {result['errors']}")
        sides_summary = {side: _stream_medians(results) for side, results in collected.items()}
        ours, agentos, inproc = sides_summary["agno-graphql"], sides_summary["agentos"], sides_summary["in-process"]
        return {
            "deltas_per_run": deltas,
            "sides": sides_summary,
            "errors": errors,
            "error_samples": samples[:5],
            "ratios": {
                "vs_agentos_deltas_per_second": ratio(ours["deltas_per_second"], agentos["deltas_per_second"]),
                "vs_in_process_deltas_per_second": ratio(ours["deltas_per_second"], inproc["deltas_per_second"]),
                "first_event_vs_in_process": ratio(ours["first_event_ms"], inproc["first_event_ms"]),
                "agentos_first_event_vs_in_process": ratio(agentos["first_event_ms"], inproc["first_event_ms"]),
            },
        }

    def model_stats(self, reset: bool = False) -> dict[str, Any]:
        """How late the paced model server sent its chunks since the last reset."""
        import urllib.request

        base = self.servers[MODEL_SERVER].base
        request = urllib.request.Request(f"{base}/stats/reset", method="POST") if reset else f"{base}/stats"
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))

    def b4_level(self, side: str, agent: str, deltas: int, ramp: float, measure: float) -> Callable[[int], Any]:
        """One level of `side`: `streams` concurrent runs of `agent` held for the ramp and the window."""
        tokens = [token(f"bench-b4-{k}") for k in range(max(self.config.capacity.max_streams, self.config.streams))]
        users = [f"bench-b4-{k}" for k in range(len(tokens))]

        def level(streams: int) -> dict[str, Any]:
            self.model_stats(reset=True)
            spec: dict[str, Any] = {
                "agent": agent,
                "streams": streams,
                "deltas": deltas,
                "ramp_seconds": ramp,
                "measure_seconds": measure,
            }
            if side == "agentos":
                result = self.load(
                    "sse-hold",
                    {**spec, "url": f"{self.servers['agentos'].base}/agents/{agent}/runs", "users": users},
                    worker="b4",
                )
            elif side in LIMITS:
                command = [sys.executable, "-m", "bench.inprocess", "serve", *LIMITS[side]]
                result = self.ask(f"in-process {side}", command, spec, core=SERVER_CORE)
            else:
                url = f"ws://127.0.0.1:{self.servers[side].port}/graphql"
                result = self.load("ws-hold", {**spec, "url": url, "tokens": tokens}, worker="b4")
            result["model_server"] = self.model_stats()
            return result

        return level

    def b4_process(self, side: str) -> psutil.Process:
        if side in LIMITS:
            command = [sys.executable, "-m", "bench.inprocess", "serve", *LIMITS[side]]
            return psutil.Process(self.worker(f"in-process {side}", command, SERVER_CORE).pid)
        return self.servers[side].ps

    def b4(self) -> dict[str, Any]:
        """Per side: the capacity search, then the memory of `streams` open subscriptions on the slow model."""
        cap = self.config.capacity
        sides = [s for s in B4_SIDES if s in self.servers or s in LIMITS]
        found: dict[str, Any] = {}
        for side in sides:
            # First runs pay for imports and connections (the in-process limit's process is new): not measured.
            self.b4_level(side, MODEL_AGENT, cap.deltas, 0.0, 0.0)(2)
            # The memory of open subscriptions first: a process does not give back the heap the search grew, so
            # after it the same subscriptions would fit in memory already held and seem to cost nothing.
            slow = self.b4_level(side, MODEL_SLOW_AGENT, SLOW_DELTAS, 1.0, 0.5)
            memory = measured(self.b4_process(side), slow, self.config.streams)
            level = self.b4_level(side, MODEL_AGENT, cap.deltas, cap.ramp_seconds, cap.measure_seconds)
            found[side] = search(side, self.b4_process(side), level, cap, log)
            found[side]["open_subscriptions"] = {
                "streams": self.config.streams,
                "memory_per_stream_kib": memory["memory_per_stream_kib"],
                "baseline_rss_mib": memory["baseline_rss_mib"],
                "peak_rss_mib": memory["peak_rss_mib"],
                "errors": memory["errors"],
                "error_samples": memory["error_samples"],
                # How many runs the model server streamed at once: the subscriptions are all open within the 1 s
                # ramp (each run lasts 5 s), but a side slow to start 500 runs gets fewer of them to the model.
                "most_open_at_once": (memory.get("model_server") or {}).get("most_open_streams"),
                "start_ms": memory["start_ms"],
            }
            log(
                f"B4 {side}: capacity {found[side]['capacity']}; {self.config.streams} open subscriptions "
                f"{memory['memory_per_stream_kib']:.1f} KiB each, errors {memory['errors']}"
            )
        return {
            "config": asdict(cap),
            "model_seconds": cap.model_seconds,
            "slow_model": [SLOW_DELTAS, SLOW_DELAY_MS],
            "sides": found,
            "ratios": b4_ratios(found),
        }


def b4_ratios(found: dict[str, Any]) -> dict[str, Any]:
    def at(side: str, key: str) -> Any:
        return ((found.get(side) or {}).get("at_capacity") or {}).get(key)

    def over(side: str) -> float | None:
        ours_cpu, limit_cpu = at("agno-graphql", "cpu_us_per_delta"), at(side, "cpu_us_per_delta")
        return ours_cpu - limit_cpu if ours_cpu and limit_cpu else None

    capacity = {side: found.get(side, {}).get("capacity") for side in ("agno-graphql", "agentos", LIMIT, LIMIT_OURS)}
    ours = capacity["agno-graphql"]
    return {
        # Against the limit on the same model path (agno-graphql's model): what the server adds.
        "vs_limit_capacity": ratio(ours, capacity[LIMIT_OURS]),
        "our_cpu_us_per_delta_over_limit": over(LIMIT_OURS),
        # Against Agno's own path (Agno's OpenAILike): what a user of agno-graphql gets over Agno's own.
        "vs_agno_limit_capacity": ratio(ours, capacity[LIMIT]),
        "cpu_us_per_delta_over_agno_limit": over(LIMIT),
        "vs_agentos_capacity": ratio(ours, capacity["agentos"]),
        "two_workers_vs_one_capacity": ratio(found.get(TWO_WORKERS, {}).get("capacity"), ours),
        "start_p99_ms_at_capacity": (at("agno-graphql", "start_ms") or {}).get("p99"),
    }


def _http_medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests_per_second": median([r["requests_per_second"] for r in results]),
        "latency_ms": {
            "p50": median([r["latency_ms"]["p50"] for r in results]),
            "p99": median([r["latency_ms"]["p99"] for r in results]),
        },
        "response_bytes": median([r["response_bytes"]["p50"] for r in results]),
        "rounds": [round(r["requests_per_second"], 1) for r in results],
        "errors": sum(int(r["errors"]) for r in results),
        "error_samples": [s for r in results for s in r["error_samples"]][:3],
        "load_generator_cpu_seconds": median([r["load_generator_cpu_seconds"] for r in results]),
    }


def _stream_medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(results),
        "deltas_per_second": median([r["deltas_per_second"] for r in results]),
        "first_event_ms": median([r["first_event_ms"] for r in results]),
        "first_delta_ms": median([r["first_delta_ms"] for r in results]),
        "seconds": median([r["seconds"] for r in results]),
    }


def machine_info(database_url: str) -> dict[str, Any]:
    from importlib.metadata import version

    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    conn = pymysql.connect(
        host=url.host or "127.0.0.1", port=url.port or 3306, user=url.username or "root", password=url.password or ""
    )
    with conn.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        row = cursor.fetchone()
    conn.close()
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    packages = [
        "agno",
        "strawberry-graphql",
        "starlette",
        "uvicorn",
        "fastapi",
        "sqlalchemy",
        "aiomysql",
        "asyncmy",
        "uvloop",
        "httptools",
        "websockets",
        "aiohttp",
    ]
    versions = {}
    for name in packages:
        with contextlib.suppress(Exception):
            versions[name] = version(name)
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "mariadb": row[0] if row else None,
        "versions": versions,
        "load_average_start": os.getloadavg(),
    }


def run(config: BenchConfig) -> dict[str, Any]:
    log(f"database {config.database_url}")
    info = machine_info(config.database_url)
    seeded = asyncio.run(seeding.seed(config.database_url, bench_agents(), config.plan, log=log))
    bench = Bench(config)
    report: dict[str, Any] = {
        "machine": info,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "pinning": bool(config.pin and shutil.which("taskset") and (os.cpu_count() or 1) > 1),
        "seed": {"reused": seeded.reused, "seconds": round(seeded.seconds, 2)},
    }
    try:
        bench.start_all()
        bench.warm_up(seeded.users, seeded.history_sessions)
        if "B1" in config.scenarios:
            report["B1"] = bench.b1(seeded.users)
        if "B2" in config.scenarios:
            report["B2"] = bench.b2(seeded.history_sessions)
        if "B3" in config.scenarios:
            report["B3"] = bench.b3()
        if "B4" in config.scenarios:
            report["B4"] = bench.b4()
    finally:
        bench.stop_all()
        if config.drop_database:
            seeding.drop_database(config.database_url)
    report["machine"]["load_average_end"] = os.getloadavg()
    return report


def with_overrides(config: BenchConfig, **overrides: Any) -> BenchConfig:
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def errors_of(report: dict[str, Any]) -> dict[str, int]:
    """Every error count in the report, by where it was counted (all must be zero)."""
    found: dict[str, int] = {}
    for side, data in report.get("B1", {}).get("sides", {}).items():
        found[f"B1 {side}"] = data["errors"]
    for size, sides in report.get("B2", {}).get("by_runs", {}).items():
        for side, data in sides.items():
            found[f"B2 {size} {side}"] = data["errors"]
    for side, count in report.get("B3", {}).get("errors", {}).items():
        found[f"B3 {side}"] = count
    for side, data in report.get("B4", {}).get("sides", {}).items():
        # A level that fails on errors is a finding of the search, not a broken run, unless it is the first level.
        first = data["levels"][0] if data["levels"] else {"errors": 0}
        found[f"B4 {side} first level"] = first["errors"]
        if side != "agentos":
            # AgentOS failing some of 500 runs started within a second (its database pool) is a finding of the
            # benchmark, shown in the report; ours failing any is a broken run.
            found[f"B4 {side} open subscriptions"] = data["open_subscriptions"]["errors"]
    return found
