"""Run the atheris fuzz targets (``tests/fuzz/targets``; RELIABILITY.md §6) for a bounded time.

    python scripts/fuzz.py [--seconds 25] [--jobs 2] [TARGET ...]   # all targets by default
    python scripts/fuzz.py --one TARGET [libFuzzer flags ...]         # one target, in this process

Theory of operation: the parent starts one child process per target (``--one``), ``--jobs`` at a
time (the CI machine has 2 cores), each with libFuzzer's ``-max_total_time``, ``-rss_limit_mb=512
-timeout=2 -max_len=65535``. A child enters atheris' import instrumentation before it imports
its target (and so pyipsec), then fuzzes the target's ``check`` function. Its working corpus is
``.fuzz/corpus/<target>/`` (kept between runs, not in git) seeded from the in-repo seed corpus
``tests/corpus/<target>/``; libFuzzer writes any crash, timeout or out-of-memory input into
``tests/corpus/<target>-crash/``. The parent prints each target's executions per second and
coverage (``cov``/``ft``) and exits non-zero naming every new crash file; commit the file with
the fix and ``tests/fuzz/test_corpus_replay.py`` replays it forever after.

The seed corpus is built by ``python -m tests.fuzz.seeds`` (from the strongSwan captures, the
example configurations and honest EAP conversations).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import atheris  # (imports nothing of pyipsec: instrumentation must come first)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz.targets import TARGETS, Target  # noqa: E402  (imports no pyipsec module)

WORK = ROOT / ".fuzz"
FLAGS = ("-rss_limit_mb=512", "-timeout=2", "-max_len=65535", "-print_final_stats=1")
GRACE = 120  # seconds a child may take beyond its fuzzing time (start-up, final merge) before it is killed


# -- one target, in this process (the child) ---------------------------------------------------


def run_one(name: str, flags: list[str]) -> None:
    target = TARGETS[name]
    with atheris.instrument_imports(include=list(target.instrument)):
        module = importlib.import_module(target.module)
    check = module.check
    atheris.Setup([sys.argv[0], *flags], check)
    atheris.Fuzz()


# -- all targets (the parent) ---------------------------------------------------------------------


@dataclass
class Result:
    target: Target
    returncode: int
    seconds: float
    crashes: list[Path]
    stats: dict[str, str]
    log: Path


def _start(target: Target, seconds: int) -> tuple[subprocess.Popen[bytes], Path, set[Path], float]:
    corpus = WORK / "corpus" / target.name
    corpus.mkdir(parents=True, exist_ok=True)
    target.crashes.mkdir(parents=True, exist_ok=True)
    log = WORK / "logs" / f"{target.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    before = set(target.crashes.iterdir())
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        target.name,
        *FLAGS,
        f"-max_total_time={seconds}",
        f"-artifact_prefix={target.crashes}/",
        str(corpus),
        str(target.seeds),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, log, before, time.monotonic()


_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\S+)")
_LAST = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\S+)")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def _stats(text: str) -> dict[str, str]:
    stats: dict[str, str] = {}
    found = _DONE.findall(text) or _LAST.findall(text)
    if found:
        runs, cov, ft, corp = found[-1]
        stats.update(runs=runs, cov=cov, ft=ft, corpus=corp)
    for key, value in _STAT.findall(text):
        stats[key] = value
    return stats


def run_all(targets: list[Target], seconds: int, jobs: int) -> int:
    pending = list(targets)
    running: list[tuple[Target, subprocess.Popen[bytes], Path, set[Path], float]] = []
    results: list[Result] = []
    while pending or running:
        while pending and len(running) < jobs:
            target = pending.pop(0)
            print(f"fuzz: {target.name} for {seconds} s ({target.summary})", flush=True)
            running.append((target, *_start(target, seconds)))
        time.sleep(0.5)
        for item in list(running):
            target, proc, log, before, started = item
            elapsed = time.monotonic() - started
            if proc.poll() is None and elapsed > seconds + GRACE:
                proc.kill()
            if proc.poll() is None:
                continue
            running.remove(item)
            new = sorted(set(target.crashes.iterdir()) - before)
            text = log.read_text(errors="replace")
            results.append(Result(target, proc.returncode, elapsed, new, _stats(text), log))
            if proc.returncode or new:
                print(f"fuzz: {target.name} FAILED (exit {proc.returncode}); log {log}", flush=True)
                print("\n".join(text.splitlines()[-40:]), flush=True)
    return _report(results)


def _report(results: list[Result]) -> int:
    print(f"\n{'target':<15} {'runs':>9} {'exec/s':>7} {'cov':>6} {'ft':>6} {'corpus':>12}  result")
    failed = []
    for r in sorted(results, key=lambda r: r.target.name):
        s = r.stats
        ok = r.returncode == 0 and not r.crashes
        outcome = "ok" if ok else "CRASH " + " ".join(str(p.relative_to(ROOT)) for p in r.crashes)
        if not ok and not r.crashes:
            outcome = f"FAILED (exit {r.returncode}, see {r.log.relative_to(ROOT)})"
        print(
            f"{r.target.name:<15} {s.get('number_of_executed_units', s.get('runs', '?')):>9} "
            f"{s.get('average_exec_per_sec', '?'):>7} {s.get('cov', '?'):>6} {s.get('ft', '?'):>6} "
            f"{s.get('corpus', '?'):>12}  {outcome}"
        )
        if not ok:
            failed.append(r)
    for r in failed:
        for path in r.crashes:
            rel = path.relative_to(ROOT)
            print(f"fuzz: new crash input {rel} (replay: pytest tests/fuzz -k {r.target.name})")
    return 1 if failed else 0


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        run_one(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", help=f"default: all ({', '.join(TARGETS)})")
    parser.add_argument("--seconds", type=int, default=25, help="fuzzing time per target")
    parser.add_argument("--jobs", type=int, default=2, help="targets run at the same time")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args()
    if args.list:
        print(json.dumps({t.name: t.summary for t in TARGETS.values()}, indent=1))
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    chosen = [TARGETS[t] for t in args.targets] if args.targets else list(TARGETS.values())
    return run_all(chosen, args.seconds, max(1, args.jobs))


if __name__ == "__main__":
    sys.exit(main())
