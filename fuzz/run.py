"""Run the fuzz targets: ``python -m fuzz.run --time 60 [--target NAME ...]``.

Each target gets ``--time`` seconds (default 10): first its corpus seeds, then
Hypothesis-generated inputs (:mod:`fuzz.strategies`) in rounds until the time is up.
A failing input is shrunk by Hypothesis, printed, and saved under
``fuzz/corpus/crashes/<target>-<hash>.bin``; the exit status is 1 if any target failed.
``--atheris NAME`` runs one target under atheris (coverage-guided) instead, when it is
installed: ``python -m fuzz.run --atheris framer -- -max_total_time=60``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from fuzz.strategies import CORPUS, STRATEGIES, seeds
from fuzz.targets import TARGETS


class Stats:
    def __init__(self) -> None:
        self.execs = 0
        self.failure: tuple[bytes, str] | None = None


def run_target(name: str, seconds: float, max_examples: int = 200) -> Stats:
    """Seeds, then Hypothesis rounds until ``seconds`` pass; stops at the first failure."""
    fn, stats = TARGETS[name], Stats()
    deadline = time.monotonic() + seconds
    for seed in seeds(name):
        stats.execs += 1
        try:
            fn(seed)
        except Exception:
            stats.failure = (seed, traceback.format_exc())
            return stats

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink])
    @given(STRATEGIES[name])
    def once(data: bytes) -> None:
        stats.execs += 1
        try:
            fn(data)
        except Exception:
            last[0] = data
            raise

    last: list[bytes] = [b""]
    while time.monotonic() < deadline:
        try:
            once()
        except Exception:
            stats.failure = (last[0], traceback.format_exc())
            return stats
    return stats


def save_crash(name: str, data: bytes) -> Path:
    out = CORPUS / "crashes"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.splitlines()[0])
    p.add_argument("--time", type=float, default=10.0, help="seconds per target (default 10)")
    p.add_argument("--target", action="append", choices=sorted(TARGETS),
                   help="run only these (repeatable)")
    p.add_argument("--atheris", metavar="NAME", choices=sorted(TARGETS))
    args, rest = p.parse_known_args(argv)
    logging.disable(logging.CRITICAL)  # rejections are logged at INFO: keep the output short
    if args.atheris:
        return _atheris(args.atheris, rest)
    failed = 0
    print(f"{'target':14} {'execs':>8} {'time':>7} {'exec/s':>8}  result")
    for name in args.target or list(TARGETS):
        t0 = time.monotonic()
        stats = run_target(name, args.time)
        dt = time.monotonic() - t0
        result = "ok"
        if stats.failure is not None:
            failed += 1
            path = save_crash(name, stats.failure[0])
            result = f"FAILED, input saved to {path}"
        print(f"{name:14} {stats.execs:8d} {dt:6.1f}s {stats.execs / dt:8.0f}  {result}",
              flush=True)
        if stats.failure is not None:
            print(stats.failure[1], file=sys.stderr)
    return 1 if failed else 0


def _atheris(name: str, rest: list[str]) -> int:
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        print("atheris is not installed (pip install atheris)", file=sys.stderr)
        return 2
    fn = TARGETS[name]
    corpus = CORPUS / name
    argv = [sys.argv[0], *[a for a in rest if a != "--"]]
    if corpus.is_dir():
        argv.append(str(corpus))
    atheris.Setup(argv, fn)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
