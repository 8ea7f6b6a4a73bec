"""Benchmark of the robustness bootstrap: 7,000 nominations × 7 reviewers, B = 1,000 resamples.

    .venv/bin/python scripts/bench_robustness.py [--nominations 7000] [--reviewers 7] [--resamples 1000]
                                                [--method trimmed] [--repeat 3]

The panel is synthetic (a quality per nomination plus each reviewer's bias and noise, totals on the
rubric's 0.5 grid), built in numpy: the figure is the statistics alone, as the huey task runs them after
one read of the counted sheets. Prints one line per method (best of --repeat) and, as the last line,
one JSON object: nominations, resamples, seconds (bootstrap + leave-one-out + method sides of the
chosen method, best of --repeat, wall clock), cpu_seconds (the same run's process CPU time: on a machine
shared with other work the wall clock waits for the CPU), peak_mib (peak resident memory, in MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from app.stats import robustness  # noqa: E402


def synthetic_panel(nominations: int, reviewers: int, seed: int = 2024) -> robustness.Panel:
    rng = np.random.default_rng(seed)
    quality = rng.normal(75, 8, nominations)
    bias = rng.normal(0, 4, reviewers)
    noise = rng.normal(0, 6, (nominations, reviewers))
    totals = np.clip(np.round((quality[:, None] + bias[None, :] + noise) * 2) / 2, 0, 100)
    return robustness.Panel.from_totals(
        np.arange(1, nominations + 1), np.repeat(np.arange(nominations), reviewers),
        np.tile(np.arange(1, reviewers + 1), nominations), totals.ravel())


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nominations", type=int, default=7000)
    ap.add_argument("--reviewers", type=int, default=7)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--method", choices=robustness.METHODS, default="trimmed")
    ap.add_argument("--slots", type=int, default=None, help="award slots (default: 10 % of the nominations)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    panel = synthetic_panel(args.nominations, args.reviewers)
    slots = args.slots or max(1, args.nominations // 10)
    best = {}
    for method in dict.fromkeys([*robustness.METHODS, args.method]):
        times = []
        for _ in range(args.repeat):
            started, cpu = time.perf_counter(), time.process_time()
            places, _sides = robustness.analyse(panel, method, slots, resamples=args.resamples)
            times.append((time.perf_counter() - started, time.process_time() - cpu))
        best[method] = min(times)
        edge = sum(p.label == "edge" for p in places)
        print(f"{method:8s} best {best[method][0]:.2f} s (CPU {best[method][1]:.2f} s) of {args.repeat}; "
              f"临界 {edge} of {len(places)}")
    print(json.dumps({"nominations": args.nominations, "reviewers": args.reviewers, "resamples": args.resamples,
                      "method": args.method, "seconds": round(best[args.method][0], 3),
                      "cpu_seconds": round(best[args.method][1], 3),
                      "peak_mib": round(peak_mib(), 1)}))


if __name__ == "__main__":
    main()
