"""Check that pyproject's floors are true: run the tests that use a library against its floor version.

For each library below, the wheel of the floor version pyproject names (`name>=X`) is fetched with
`pip download` (pure-Python wheels only), unpacked into a scratch folder, and put first on
PYTHONPATH for a pytest run of the tests that exercise it; everything else comes from .venv.
Too slow (and too network-bound) for every CI run; run it when a floor changes:

    .venv/bin/python tools/check_floors.py [name ...]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# library -> (module it installs, the tests that use it)
CHECKED = {
    "pathspec": ("pathspec", ["tests/test_ignore.py", "tests/test_archive.py"]),
    "tenacity": ("tenacity", ["tests/test_mail_mailgun.py", "tests/contract/test_accounts_contract.py"]),
    "email-validator": ("email_validator", ["tests/test_mail_mailgun.py", "tests/test_keygen_roster.py"]),
    "mailgun": ("mailgun", ["tests/test_mail_mailgun.py"]),
    "auth0-python": ("auth0", ["tests/contract/test_accounts_contract.py"]),
    "nvidia-ml-py": ("pynvml", ["tests/test_gpus.py"]),
}


def floors() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?>=([0-9][^,; ]*)", dep.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def check(name: str, version: str, scratch: Path) -> bool:
    module, tests = CHECKED[name]
    wheels = scratch / f"{name}-wheel"
    site = scratch / f"{name}-site"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "-d", str(wheels), f"{name}=={version}"], check=True)
    [wheel] = wheels.glob("*.whl")
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    probe = subprocess.run([sys.executable, "-c", f"import {module}, sys; print({module}.__file__)"],
                           env=env, capture_output=True, text=True, cwd=ROOT)
    assert str(site) in probe.stdout, f"{module} did not load from the floor wheel: {probe.stdout}{probe.stderr}"
    rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                        env=env, cwd=ROOT).returncode
    print(f"{name}=={version}: {'ok' if rc == 0 else 'FAILED'}", flush=True)
    return rc == 0


def main(argv: list[str]) -> int:
    pins = floors()
    names = argv or list(CHECKED)
    with tempfile.TemporaryDirectory(prefix="rai-floors-") as tmp:
        results = {n: check(n, pins[n], Path(tmp)) for n in names}
    print("floors: " + ", ".join(f"{n}>={pins[n]} {'ok' if ok else 'FAILED'}" for n, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
