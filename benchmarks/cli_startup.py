"""How fast does ``camtool --help`` answer, next to ``import torch``?

The help screens must not import torch: this script times, side by side in one run, the median
wall time of ``camtool --help``, ``camtool cam --help`` and a bare ``python -c "import torch"``,
and prints the ratios. Run: ``python benchmarks/cli_startup.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "camtool --help": [sys.executable, "-m", "camtool", "--help"],
    "camtool cam --help": [sys.executable, "-m", "camtool", "cam", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the file cache
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = {name: median_seconds(cmd, args.runs) for name, cmd in COMMANDS.items()}
    torch_time = results["python -c 'import torch'"]
    for name, seconds in results.items():
        print(f"{name:28s} {seconds * 1000:8.0f} ms   {seconds / torch_time:5.2f}x import torch")


if __name__ == "__main__":
    main()
