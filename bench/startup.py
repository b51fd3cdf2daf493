"""Start-up timings: the CLI's import time and kill -9 -> first resumed step.

    python bench/startup.py               # both figures, 5 rounds each
    python bench/startup.py resume --rounds 10

  import   `python -c "import bot.cli.main"` in a fresh interpreter (wall clock of the whole process, and the
           import alone as `python -X importtime` reports it, with the five slowest top-level modules)
  resume   `workflow run` is killed with SIGKILL while its first step runs; then `switchboard workflow resume RUN`
           (or `--all`) is started, and the figure is the time from launching that process to the resumed step's program
           starting (the step writes a clock reading to a file)

Each figure is printed with the load average beside it: these are wall-clock times of real processes.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The first attempt records that it ran, then blocks until killed; the resumed attempt records its start time.
CRASHY = """
name: crashy
steps:
  first:
    run: ["{python}", "-c", "{program}", "{folder}"]
  second: {{needs: [first], run: ["true"]}}
"""
PROGRAM = (
    "import sys,time,pathlib;f=pathlib.Path(sys.argv[1]);"
    "s=f/'started';m=f/'resumed';"
    "(m.write_text(repr(time.time())) if s.exists() else (s.write_text('1'),time.sleep(60)))"
)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def environment(folder: Path) -> dict[str, str]:
    inherited = {
        k: v for k, v in os.environ.items() if not k.startswith(("SWITCHBOARD_", "SLACK_", "DISCORD_"))
    }
    return {
        **inherited,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bench.db'}",
        "SWITCHBOARD_WORKFLOWS_DIR": str(folder),
        "PYTHONPATH": str(ROOT),
    }


def import_figure() -> tuple[float, float, list[tuple[str, float]]]:
    """(process wall seconds, import seconds per -X importtime, the slowest top-level imports)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bot.cli.main"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    wall = time.monotonic() - started
    total = 0.0
    tops: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) == 3:  # what bot.cli.main imports itself
            tops.append((match.group(3), int(match.group(1)) / 1e6))
        if match and match.group(3) == "bot.cli.main":
            total = int(match.group(1)) / 1e6
    tops.sort(key=lambda t: -t[1])
    return wall, total, tops[:6]


def resume_figure(every: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "crashy.yaml").write_text(
            CRASHY.format(python=sys.executable, program=PROGRAM.replace('"', '\\"'), folder=folder)
        )
        env = environment(folder)
        command = [sys.executable, "-m", "bot.cli.main"]
        runner = subprocess.Popen(
            [*command, "workflow", "run", "crashy", "--detach"], env=env, text=True, stdout=subprocess.PIPE
        )
        out, _ = runner.communicate(timeout=60)
        # --detach returns once the run is stored; the step runs in whichever process resumes it, so start one
        # that follows the run and kill it while the step blocks.
        run_id = re.search(r"\b([0-9a-f]{8,}[0-9a-f-]*)\b", out)
        assert run_id, out
        follower = subprocess.Popen(
            [*command, "workflow", "resume", run_id.group(1)], env=env, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while not (folder / "started").exists():
            assert time.monotonic() < deadline, "the first attempt never started"
            time.sleep(0.01)
        follower.send_signal(signal.SIGKILL)
        follower.wait()
        launched = time.time()
        resumer = subprocess.Popen(
            [*command, "workflow", "resume", *(["--all"] if every else [run_id.group(1)])],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            while not (folder / "resumed").exists():
                assert time.time() < launched + 60, "the step was not resumed"
                time.sleep(0.002)
            time.sleep(0.01)  # the file is written in one go, but let the writer finish
            return float((folder / "resumed").read_text()) - launched
        finally:
            resumer.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("figures", nargs="*", metavar="FIGURE", help="import, resume")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--all", action="store_true", help="resume with `workflow resume --all` instead of by id"
    )
    args = parser.parse_args()
    figures = args.figures or ["import", "resume"]
    if "import" in figures:
        runs = [import_figure() for _ in range(args.rounds)]
        walls = [r[0] for r in runs]
        imports = [r[1] for r in runs]
        print(
            f"import   `import bot.cli.main`: median {statistics.median(imports) * 1000:6.0f} ms import"
            f" ({statistics.median(walls) * 1000:.0f} ms for the whole interpreter)"
            f"  ({args.rounds} rounds; load average {load()})",
            flush=True,
        )
        print(
            "         slowest: " + ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in runs[-1][2]),
            flush=True,
        )
    if "resume" in figures:
        seconds = [resume_figure(args.all) for _ in range(args.rounds)]
        print(
            f"resume   kill -9 -> first resumed step: median {statistics.median(seconds):5.2f} s"
            f"  max {max(seconds):5.2f} s  ({args.rounds} rounds; load average {load()})",
            flush=True,
        )


if __name__ == "__main__":
    main()
