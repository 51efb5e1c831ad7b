""".raiignore follows git: each pattern set is checked against `git check-ignore` on a scratch repo.

The same files are laid out in a scratch git repository with the patterns as its `.gitignore`;
what git says is ignored must be exactly what a walk with `IgnoreRules` (not descending into an
ignored folder, as the packer does) leaves out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rai.domain.ignore import IGNORE_FILE, IgnoreRules

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

FILES = [
    "logs/a.txt", "src/logs/b.txt", "c.o", "keep.o", "a/c.o", "a/b/c.o", "a/b/b/d.o", "data/x.csv",
    "data/keep.csv", "src/data/y.csv", "build/out.bin", "deep/build/out.bin", "deep/build.txt", "build.txt",
    "doc/readme.md", "doc/api/ref.md", "sp ace.txt", "foo/bar/baz.txt", "foo/baz.txt", "x.log", "#hash",
    "src/main.cu", "src/main.o",
]

PATTERNS = {
    "double star at the top": ["**/logs"],
    "a slash in the middle anchors": ["a/*.o"],
    "negation": ["*.o", "!keep.o"],
    "a folder anywhere": ["data/"],
    "anchored at the root": ["/data"],
    "a file under an ignored folder stays ignored": ["data/", "!data/keep.csv"],
    "contents ignored, one file back": ["data/*", "!data/keep.csv"],
    "a name, file or folder, at any depth": ["build"],
    "an anchored folder only": ["/build/"],
    "double star in the middle": ["foo/**/baz.txt"],
    "double star then a folder": ["**/b/*.o"],
    "one level only": ["doc/*.md"],
    "comments, blank lines, a space in a name": ["# a comment", "", "*.txt", "!sp ace.txt"],
    "an escaped hash": ["\\#hash"],
    "trailing spaces are dropped": ["*.log   "],
    "everything under a folder": ["a/**"],
    "a folder and a negated file in it": ["src/", "!src/main.cu"],
    "question mark and brackets": ["?.o", "[bc]uild.txt"],
    "nothing": [],
}


def git(repo: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo)}
    return subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, env=env)


def lay_out(root: Path, patterns: list[str]) -> None:
    for rel in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".gitignore").write_text("\n".join(patterns) + "\n")
    (root / IGNORE_FILE).write_text("\n".join(patterns) + "\n")


def git_ignored(repo: Path) -> set[str]:
    """The files git says are ignored: `git check-ignore` on every file, cross-checked with ls-files."""
    checked = git(repo, "check-ignore", "--stdin", stdin="\n".join(FILES) + "\n")
    assert checked.returncode in (0, 1), checked.stderr
    ignored = set(checked.stdout.splitlines())
    kept = set(git(repo, "ls-files", "--others", "--exclude-standard").stdout.splitlines())
    assert ignored == set(FILES) - (kept - {".gitignore", IGNORE_FILE})  # git agrees with itself
    return ignored


def walk_ignored(root: Path) -> set[str]:
    """The files a walk with IgnoreRules leaves out; an ignored folder is not entered."""
    rules = IgnoreRules.for_project(root)
    kept: set[str] = set()
    for dirpath, dirs, files in os.walk(root):
        rel_root = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_root == "." else rel_root + "/"
        dirs[:] = [d for d in dirs if d != ".git" and not rules.ignored(prefix + d, True)]
        kept |= {prefix + f for f in files if not rules.ignored(prefix + f, False)}
    return set(FILES) - kept


@pytest.mark.parametrize("name", list(PATTERNS))
def test_the_rules_leave_out_what_git_ignores(tmp_path, name):
    lay_out(tmp_path, PATTERNS[name])
    assert git(tmp_path, "init", "-q").returncode == 0
    assert walk_ignored(tmp_path) == git_ignored(tmp_path)


def test_the_issue_cases_go_gits_way(tmp_path):
    assert IgnoreRules(["**/logs"]).ignored("logs", True)  # the old rules kept a top-level logs/
    assert not IgnoreRules(["a/*.o"]).ignored("a/b/c.o", False)  # ... and left out a/b/c.o
    assert IgnoreRules(["a/*.o"]).ignored("a/c.o", False)


def test_the_profile_is_left_out_whatever_the_file_says(tmp_path):
    (tmp_path / IGNORE_FILE).write_text("!.rai_profile\n!*.rai_profile\n")
    rules = IgnoreRules.for_project(tmp_path)
    assert rules.ignored(".rai_profile", False) and rules.ignored("sub/ada.rai_profile", False)
    assert not rules.ignored("main.cu", False)


def test_no_raiignore_leaves_out_only_the_profile(tmp_path):
    rules = IgnoreRules.for_project(tmp_path)
    assert rules.ignored(".rai_profile", False)
    assert not any(rules.ignored(f, False) for f in FILES)


def test_without_a_raiignore_the_profile_rules_are_pathspecs_own(tmp_path):
    """No .raiignore: pathspec is not loaded, and the profile's rules leave out what pathspec's would."""
    from pathspec import GitIgnoreSpec

    from rai.domain.ignore import ALWAYS_IGNORED

    rules = IgnoreRules.for_project(tmp_path)
    assert rules.spec is None  # nothing of pathspec's made
    spec = GitIgnoreSpec.from_lines(list(ALWAYS_IGNORED))
    names = [".rai_profile", "ada.rai_profile", "rai_profile", "x.rai_profile.bak", ".rai_profile~", "a.rai_profilex",
             "my.rai_profile", "main.cu", ".raiignore", "rai_build.yml"]
    for folder in ("", "src/", "a/b/", "rai_profile/"):  # (a walk never enters a folder the rules leave out)
        for name in names:
            for is_dir in (False, True):
                rel = folder + name
                assert rules.ignored(rel, is_dir) == spec.match_file(rel + ("/" if is_dir else "")), rel
