"""Helpers for the benchmarks: time a command or a function, with the peak memory it used."""
import os
import resource
import subprocess
import sys
import tempfile
import time


def run_command(cmd, cwd=None, env=None):
    "(seconds, peak RSS in MB of the command and its children) of running `cmd` (a list); raises if it fails."
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()  # /usr/bin/time measures the command itself, not this Python process's fork
        done = subprocess.run(["/usr/bin/time", "-o", report.name, "-f", "%M", *map(str, cmd)], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0: raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {done.stderr[-2000:]}")
        return seconds, int(report.read().split()[-1]) / 1024


def table(header, rows):
    "A markdown table of `rows` (lists of cells) under `header`."
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def machine():
    "One line describing this machine."
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown CPU")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM"


def finish_run(text, out, cells, start, failed):
    "Print the run's markdown, say where it was written (`out`) and which cells failed; the exit status (1: some failed)."
    print(text)
    if out: print(f"wrote {out} ({cells} cells in {time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if failed: print(f"{len(failed)} cell(s) failed:\n" + "\n".join(failed), file=sys.stderr)
    return 1 if failed else 0
