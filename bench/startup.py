"""`rai whoami` and `rai --help` wall time (a fresh interpreter each, as a student runs them) against
`python -c pass`, in one run; the issue's target is `rai whoami` <= 0.15 s.

    python bench/startup.py [--runs 15]

`whoami` reads the profile only (no server), so no installation is needed: a profile in a temp folder.
Prints the median and best of each, then the ratio line (whoami's median over the target) last.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, installed_python

TARGET = 0.15  # seconds, the issue's
PROFILE = ("profile:\n  username: bench\n  email: bench@example.edu\n  team: {name: t1}\n  role: student\n"
           "  access_key: AKBENCH\n  secret_key: SKBENCH\n")


def timed(args: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rai-bench-startup-"))
    try:
        profile = tmp / "bench.profile"
        profile.write_text(PROFILE)
        env = {k: v for k, v in os.environ.items() if k not in ("RAI_CONFIG", "RAI_PROFILE")}
        env["HOME"] = str(tmp)
        env = installed_python(env, tmp / "pycache")  # rai's modules byte-compiled, as pip installs them
        script = Path(sys.executable).parent / "rai"  # the console script pip installs, when it is there
        rai = [str(script)] if script.exists() else [sys.executable, "-m", "rai"]
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "rai --help": [*rai, "--help"],
            "rai whoami": [*rai, "--profile", str(profile), "whoami"],
        }
        for argv in cases.values():  # warm: bytecode caches, the page cache
            timed(argv, env, 2)
        results = {name: timed(argv, env, args.runs) for name, argv in cases.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"runs: {args.runs} each; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; {' '.join(rai)}")
    for name, times in results.items():
        print(f"{name:16s} median {statistics.median(times):.3f}s  best {min(times):.3f}s")
    whoami = statistics.median(results["rai whoami"])
    print(f"ratio rai whoami median / target {TARGET:.2f}s (<= 1.0 meets it): {whoami / TARGET:.2f}"
          f"  (whoami - python -c pass: {whoami - statistics.median(results['python -c pass']):.3f}s)")


if __name__ == "__main__":
    main()
