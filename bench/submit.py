"""`rai submit --no-follow` of a 100 MB project against `tar -cf - DIR | zstd -3 -T0 > /dev/null`, in one run.

    python bench/submit.py [--runs 2] [--keep DIR]

Makes its own project in a temp folder: 2,000 text files of 30 KB (words drawn from a vocabulary with
Zipf-like frequencies, as source code repeats its identifiers: about 2.6x with zstd -3) and 4 binary
files of 10 MB (32-bit samples whose upper bytes vary little: about 1.5x), 100 MB in all, plus a
rai_build.yml. Then, each run (after one untimed pass of the baseline, so every file is in the page cache; each
step after an untimed `sync`, so no step pays for an earlier one's disk writes):

  baseline  `tar -cf - DIR | zstd -3 -T0 > /dev/null` (needs the zstd program: `apt-get install zstd`)
  pack      rai.client.packing.PackStream read into a null sink, in this process: packing alone, as submit packs
            (zstd level 2: the first line says how much larger its archive is than the baseline's)
  client    rai.client.core.Client.submit in this process: packing streamed into the upload, then the job
            request (no interpreter start, no imports)
  submit    `python -m rai submit --no-follow -p DIR` as a student runs it: a fresh interpreter, its
            imports (rai's modules byte-compiled, as pip leaves an installed package: bench/harness.py's
            installed_python), whoami, the streamed upload, the job request

against a real rai-server and redis-server of its own (bench/harness.py; no raid: the jobs stay queued).
Prints each run's seconds, then the ratios to the baseline of the same run (the best run's), the
whole-submit ratio line last. The issue's target: submit <= 1.2x the baseline.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import Installation, installed_python

TEXT_FILES, TEXT_SIZE = 2000, 30 * 1024
BINARY_FILES, BINARY_SIZE = 4, 10 * 1024 * 1024


def make_project(root: Path, seed: int = 1) -> int:
    """The 100 MB project under `root`; returns its bytes."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 12))) for _ in range(8000)]
    vocab += ["(", ")", "{", "}", ";", "=", "+", "0", "1", "if", "for", "return", "int", "float", "\n", "\n    "]
    weights = [1 / (i + 1) for i in range(len(vocab))]
    rng.shuffle(weights)
    total = 0
    for i in range(TEXT_FILES):
        folder = root / "src" / f"mod{i // 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        text = " ".join(rng.choices(vocab, weights, k=TEXT_SIZE // 4)).encode()
        while len(text) < TEXT_SIZE:
            text += text
        (folder / f"file{i:04d}.c").write_bytes(text[:TEXT_SIZE])
        total += TEXT_SIZE
    (root / "data").mkdir()
    for j in range(BINARY_FILES):
        samples = bytearray(rng.getrandbits(8 * BINARY_SIZE).to_bytes(BINARY_SIZE, "little"))
        samples[2::4] = bytes(b & 0x0F for b in samples[2::4])  # the upper bytes of each sample vary little
        samples[3::4] = b"\x3f" * (BINARY_SIZE // 4)
        (root / "data" / f"samples{j}.bin").write_bytes(samples)
        total += BINARY_SIZE
    (root / "rai_build.yml").write_text("rai:\n  image: localhost/rai-test:latest\ncommands:\n  build:\n    - 'true'\n")
    return total


def baseline(project: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(f"tar -cf - -C {project.parent} {project.name} | zstd -3 -T0 > /dev/null", shell=True,
                   check=True)
    return time.perf_counter() - t0


def baseline_size(project: Path) -> int:
    """Bytes of the baseline's archive (untimed): what rai's own packing (zstd level 2) is compared with."""
    r = subprocess.run(f"tar -cf - -C {project.parent} {project.name} | zstd -3 -T0 | wc -c", shell=True,
                       check=True, capture_output=True, text=True)
    return int(r.stdout.strip())


def pack(project: Path) -> tuple[float, int]:
    from rai.client.packing import PackStream

    t0 = time.perf_counter()
    with PackStream(project) as stream:
        size = sum(len(chunk) for chunk in stream)
    return time.perf_counter() - t0, size


def client_submit(inst: Installation, project: Path) -> float:
    client = inst.client()
    client.whoami()  # outside the timing, as `submit` below asks it too: the connection is open
    t0 = time.perf_counter()
    client.submit(project, queue="rai_bench")
    elapsed = time.perf_counter() - t0
    client.api.close()
    return elapsed


def student_env(inst: Installation, student_config: Path) -> dict[str, str]:
    return installed_python({**inst.env, "RAI_CONFIG": str(student_config)}, inst.tmp / "pycache")


def cli_submit(inst: Installation, student_config: Path, project: Path) -> float:
    env = student_env(inst, student_config)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "rai", "--profile", str(inst.profile), "submit", "--no-follow",
                        "--queue", "rai_bench", "-p", str(project)], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"rai submit failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return elapsed


def cli_start(inst: Installation, student_config: Path) -> float:
    """`python -m rai version`: the interpreter and the CLI's own start, no command's work."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rai", "version"], env=student_env(inst, student_config), check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="make (or reuse) the project here instead of a temp folder")
    args = ap.parse_args()
    for tool in ("tar", "zstd"):
        if shutil.which(tool) is None:
            raise SystemExit(f"the baseline needs the {tool} program: install it (apt-get install {tool})")
    tmp = None
    if args.keep:
        project = args.keep
        if not (project / "rai_build.yml").exists():
            project.mkdir(parents=True, exist_ok=True)
            make_project(project)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="rai-bench-submit-"))
        project = tmp / "proj"
        project.mkdir()
        make_project(project)
    total = sum(f.stat().st_size for f in project.rglob("*") if f.is_file())
    inst = Installation(raid=False)
    student_config = inst.tmp / "student.yml"
    student_config.write_text(f"server:\n  url: {inst.server_url}\n")
    rows = []
    try:
        zstd3 = baseline_size(project)  # also warms: every file in the page cache
        cli_submit(inst, student_config, project)  # warm: the interpreter's bytecode caches
        for _ in range(args.runs):  # each timed step after a sync (untimed): the disk writes of the project's
            # making and of the earlier submits' stored uploads (51 MB each) go out before it, not during it
            os.sync()
            b = baseline(project)
            os.sync()
            p, size = pack(project)
            os.sync()
            c = client_submit(inst, project)
            os.sync()
            s = cli_submit(inst, student_config, project)
            rows.append((b, p, c, s))
        start = min(cli_start(inst, student_config) for _ in range(3))
    finally:
        inst.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"project: {TEXT_FILES:,} x {TEXT_SIZE // 1024} KB text + {BINARY_FILES} x {BINARY_SIZE >> 20} MB "
          f"binary = {total / 1e6:.0f} MB, packed {size / 1e6:.1f} MB (zstd -3: {zstd3 / 1e6:.1f} MB, rai "
          f"{(size / zstd3 - 1) * 100:+.1f}%); {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; runs: {args.runs}")
    for i, (b, p, c, s) in enumerate(rows, 1):
        print(f"run {i}: baseline tar | zstd -3 -T0 {b:.3f}s  pack {p:.3f}s  Client.submit {c:.3f}s  "
              f"rai submit --no-follow {s:.3f}s")
    print(f"python -m rai version (start-up alone, best of 3): {start:.3f}s")
    best = min(rows, key=lambda r: r[3] / r[0])
    for name, col in (("pack (PackStream → null)", 1), ("Client.submit (in process)", 2)):
        print(f"ratio {name} / baseline: " + "  ".join(f"{r[col] / r[0]:.2f}" for r in rows))
    print("ratio rai submit --no-follow / baseline (target <= 1.2): "
          + "  ".join(f"{r[3] / r[0]:.2f}" for r in rows) + f"  (best {best[3] / best[0]:.2f})")


if __name__ == "__main__":
    main()
