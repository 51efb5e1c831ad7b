"""Per-job overhead: trivial jobs through rai (raid --workers 2) against `podman run --rm IMAGE true`
back to back, in one run, and their ratio.

    python bench/job_overhead.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import subprocess
import time

from harness import IMAGE, Installation

from rai.domain.models import LogKind


def podman_baseline(jobs: int) -> float:
    t0 = time.perf_counter()
    for _ in range(jobs):
        subprocess.run(["podman", "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                        "--ulimit", "nproc=4096:4096", IMAGE, "true"], check=True, capture_output=True)
    return time.perf_counter() - t0


def through_rai(inst: Installation, jobs: int) -> float:
    client = inst.client()
    proj = inst.project(["true"])
    t0 = time.perf_counter()
    ids = [client.submit(proj).job_id for _ in range(jobs)]
    for job_id in ids:
        for entry in client.follow(job_id):
            if entry.kind == LogKind.end:
                assert entry.end.state.value == "succeeded", entry.end
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=20)
    args = ap.parse_args()
    inst = Installation(workers=2)
    try:
        podman_baseline(2)
        through_rai(inst, 2)  # warm up
        base = podman_baseline(args.jobs)
        rai = through_rai(inst, args.jobs)
    finally:
        inst.close()
    print(f"jobs: {args.jobs}")
    print(f"podman run --rm {IMAGE} true, back to back: {args.jobs / base:6.2f} jobs/s  "
          f"{base / args.jobs * 1000:7.0f} ms/job")
    print(f"through rai (submit → raid --workers 2 → end): {args.jobs / rai:6.2f} jobs/s  "
          f"{rai / args.jobs * 1000:7.0f} ms/job")
    print(f"ratio rai jobs/s / podman jobs/s: {base / rai:6.2f}")


if __name__ == "__main__":
    main()
