"""What machine a benchmark ran on (stdlib only; shared by every benchmark script)."""

from __future__ import annotations

import os
import platform
import sqlite3
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


def describe() -> str:
    """One line: OS, CPU, CPUs, RAM, Python, SQLite."""
    return (f"{platform.system()} {platform.release()}; {cpu_model()}; {os.cpu_count()} CPUs; "
            f"{ram_gib():.1f} GiB RAM; Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}")
