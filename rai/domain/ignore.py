""".raiignore: which files of a project folder are not uploaded, with git's own .gitignore rules.

The patterns are read by pathspec's `GitIgnoreSpec` (gitignore semantics, tested against
`git check-ignore`): `*.o`, `build/`, `/data`, `**/logs`, `a/*.o` (not `a/b/c.o`), `!keep.o`.
As in git, a directory that is ignored takes everything under it along: callers walking a tree do
not descend into one (and a `!` rule cannot bring back a file under it). The user's profile is
never packed, whatever `.raiignore` says: those default rules cannot be negated.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

IGNORE_FILE = ".raiignore"
ALWAYS_IGNORED = (".rai_profile", "*.rai_profile")
PROFILE_SUFFIX = ".rai_profile"  # what ALWAYS_IGNORED matches: a name at any depth that ends so (tests/test_ignore.py)


class IgnoreRules:
    """gitignore rules over paths relative to the project folder, in POSIX form (`src/main.o`). Without rules
    of the project's own (no .raiignore) pathspec is not loaded: the profile's rules are a name's ending."""

    def __init__(self, patterns: Iterable[str], always: Iterable[str] = ()):
        patterns, always = list(patterns), tuple(always)
        self.spec: GitIgnoreSpec | None = None
        self.always: GitIgnoreSpec | None = None
        if patterns or always not in ((), ALWAYS_IGNORED):
            from pathspec import GitIgnoreSpec  # 8 ms to load, a twentieth of `rai submit`'s start

            self.spec = GitIgnoreSpec.from_lines(patterns)
            self.always = GitIgnoreSpec.from_lines(list(always))
        self.profile_only = always == ALWAYS_IGNORED and not patterns

    @classmethod
    def for_project(cls, directory: Path) -> IgnoreRules:
        f = Path(directory) / IGNORE_FILE
        patterns = f.read_text(errors="replace").splitlines() if f.is_file() else []
        return cls(patterns, always=ALWAYS_IGNORED)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether this path is ignored, its parent folders being kept (a walker stops at ignored ones)."""
        if self.spec is None or self.always is None:
            return self.profile_only and rel.rstrip("/").rpartition("/")[2].endswith(PROFILE_SUFFIX)
        path = rel.strip("/") + ("/" if is_dir else "")
        return self.always.match_file(path) or self.spec.match_file(path)
