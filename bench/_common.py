"""What every benchmark shares: the ``--quick`` flag, timing, the machine note and the JSON line."""

import argparse
import gc
import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

__all__ = ["best_of", "best_of_interleaved", "emit", "machine", "parse_args"]


def parse_args(
    description: str, more: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """``--quick`` and ``--seed``, and whatever options ``more`` adds for one benchmark."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes in well under a minute")
    parser.add_argument("--seed", type=int, default=20261125, help="seed of the generated data")
    if more is not None:
        more(parser)
    return parser.parse_args()


def best_of(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``runs`` timings (seconds) and the last result: the least disturbed run.

    The garbage collector is paused while timing (as ``timeit`` does), so a collection triggered by
    earlier allocations is not billed to whichever run happens to be next.
    """
    best = float("inf")
    result: Any = None
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            result = work()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best, result


def best_of_interleaved(
    runs: int, first: Callable[[], Any], second: Callable[[], Any]
) -> tuple[float, float]:
    """Best timings of two workloads run alternately, so both see the same machine conditions
    (other processes on a shared host come and go)."""
    a, b = float("inf"), float("inf")
    for _ in range(runs):
        a = min(a, best_of(1, first)[0])
        b = min(b, best_of(1, second)[0])
    return a, b


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:  # noqa: PTH123  (Linux only, optional)
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}"


def emit(bench: str, figures: dict[str, Any], ratio: float, target: float) -> None:
    """The last line of every benchmark: one JSON object, for scripts."""
    print(json.dumps({"bench": bench, "figures": figures, "ratio": round(ratio, 2), "target": target}))
