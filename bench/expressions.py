"""Evaluations per second of a typical ``if:`` and a typical interpolated string, parse cached.

Run: python bench/expressions.py [seconds-per-case]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.expressions import evaluate, render

CONTEXTS = {
    "inputs": {"env": "prod", "service": "api", "count": 3},
    "steps": {
        "build": {"outputs": {"version": "1.4.2"}, "outcome": "success", "conclusion": "success"},
        "test": {"outputs": {"count": "12"}, "outcome": "success", "conclusion": "success"},
    },
    "run": {"id": "r1", "status": "succeeded", "started_by": "dana"},
    "secrets": {},
    "env": {},
}
IF = "steps.build.outcome == 'success' && inputs.env == 'prod' && steps.test.outputs.count > 0"
TEXT = "Deploy of ${{ inputs.service }} ${{ steps.build.outputs.version }} to ${{ inputs.env }}: ${{ run.status }}"


def rate(label: str, call: object, seconds: float) -> None:
    fn = call  # a zero-argument callable
    assert callable(fn)
    fn()  # parse and cache
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            fn()
        count += 1000
        now = time.perf_counter()
        if now >= deadline:
            break
    per_second = count / (now - start)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{label:<22} {per_second:>12,.0f} evals/s   (load average {load})")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    print(f"if:           {IF}")
    print(f"interpolated: {TEXT}")
    assert evaluate(IF, CONTEXTS) is True
    rate("if: expression", lambda: evaluate(IF, CONTEXTS), seconds)
    rate("interpolated string", lambda: render(TEXT, CONTEXTS), seconds)


if __name__ == "__main__":
    main()
