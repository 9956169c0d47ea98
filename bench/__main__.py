"""`python -m bench [--small] [--database-url URL] [--out DIR] [--rounds N] [--duration S] [--drop]`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from bench.harness import SMALL, BenchConfig, errors_of, log, run, with_overrides
from bench.report import markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--small", action="store_true", help="a few-second version (the test suite's)")
    parser.add_argument("--database-url", help="MariaDB URL (mysql+pymysql://...); the database is created or reused")
    parser.add_argument("--out", type=Path, help="directory for latest.json and latest.md (default bench/results)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--streams", type=int)
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--only", help="comma-separated scenarios to run (default all: B1,B2,B3,B4)")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end (no cache)")
    args = parser.parse_args(argv)
    config = SMALL if args.small else BenchConfig()
    config = with_overrides(
        config,
        database_url=args.database_url,
        out_dir=args.out,
        rounds=args.rounds,
        duration=args.duration,
        concurrency=args.concurrency,
        streams=args.streams,
        pin=False if args.no_pin else None,
        drop_database=True if args.drop else None,
        scenarios=tuple(args.only.split(",")) if args.only else None,
    )
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    report = run(config)
    report["command"] = command.strip()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    text = markdown(report, command.strip())
    for name in ("latest", stamp):
        (config.out_dir / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))
        (config.out_dir / f"{name}.md").write_text(text)
    print(text)
    errors = {where: count for where, count in errors_of(report).items() if count}
    if errors:
        log(f"ERRORS: {errors}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
