"""The shell script a job's container runs, the markers it prints, and the words a student reads.

The script runs each command with `/bin/sh -c` in /build and stops at the first failure. Marker lines carry a
per-job random token: `<token> step N` before command N and `<token> end N RC OOM BUILD` at the end on stdout
(N 0 when all succeeded; OOM the memory cgroup's oom_kill count as the container sees it, or `-`; BUILD
`empty` when /build is a folder with nothing in it, else `-`: raid then has nothing to copy out, which on
Podman spares ~80 ms of every such job), then `<token> eof` on stderr, so that everything the commands wrote
to either stream has arrived once both end markers are read. Before its end markers the script (PID 1 of the
container) kills every other process in it, so nothing the commands left running in the background can change
/build after they ended. Then it holds the container (sleeps) until raid has copied /build and removes it.

The token is not in the script (which is the container's command line, readable by the job in
/proc/1/cmdline): raid puts it in TOKEN_FILE before the container starts, and the script reads it
into an unexported shell variable and deletes the file before the first command runs, so no
command sees it in a file, an argument or its environment.
"""

from __future__ import annotations

import logging
import shlex
import signal
import time

from rai.domain.models import JobState

log = logging.getLogger(__name__)

# A marker line is MARK_PREFIX + token_hex + " " + words + "\n"; \037 never recurs in the token.
MARK_PREFIX = "\x1frai-"
TOKEN_FILE = "/.rai-token"  # holds the marker token until the script has read it


def marker_token(token_hex: str) -> bytes:
    return f"{MARK_PREFIX}{token_hex} ".encode()


def token_tar(token_hex: str) -> bytes:
    """A tar holding TOKEN_FILE (readable by root only), put into the container before it starts."""
    import io
    import tarfile

    data = (token_hex + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(TOKEN_FILE.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), 0o400, int(time.time())
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def job_script(commands: list[str]) -> str:
    lines = [
        f"read -r _rai_t < {TOKEN_FILE}; rm -f {TOKEN_FILE}",  # the token, gone from the file system
        "[ -n \"$_rai_t\" ] || { echo 'rai: the job could not start (no marker token)' >&2; exit 125; }",
        "_rai_m() { printf '\\037rai-%s %s\\n' \"$_rai_t\" \"$*\"; }",
        "_rai_oom() { for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do "
        "if [ -r \"$f\" ]; then while read -r k v; do if [ \"$k\" = oom_kill ]; then echo \"$v\"; return 0; fi; "
        "done < \"$f\"; fi; done; echo -; }",
        # PID 1 kills every other process of the container (SIGKILL to -1 spares the caller), until none is left
        "_rai_reap() { [ \"$$\" -eq 1 ] || return 0; _rai_n=0; while [ $_rai_n -lt 50 ]; do kill -9 -1 2>/dev/null "
        "|| return 0; wait 2>/dev/null; _rai_n=$((_rai_n+1)); done; }",
        # /build a folder (not a link) with no entry, dotfiles included: shell words only, no program of the image's
        "_rai_empty() { [ -d /build ] && [ ! -L /build ] || return 1; for _rai_f in /build/* /build/.[!.]* "
        "/build/..?*; do if [ -e \"$_rai_f\" ] || [ -L \"$_rai_f\" ]; then return 1; fi; done; }",
        "_rai_end() { trap - EXIT; _rai_reap; if _rai_empty; then _rai_e=empty; else _rai_e=-; fi; "
        "_rai_m end \"$1\" \"$2\" \"$(_rai_oom)\" \"$_rai_e\"; _rai_m eof >&2; "
        "exec >/dev/null 2>&1 </dev/null; sleep 2147483647; exit \"$2\"; }",
        # the shell itself dies on an error it cannot survive (no fork at the process limit): end it cleanly still
        "_rai_s=0; trap '_rai_end \"$_rai_s\" \"$?\"' EXIT",
        "cd /build || _rai_end 0 125",
    ]
    for i, cmd in enumerate(commands, 1):
        lines.append(f"_rai_s={i}; _rai_m step {i}")
        lines.append(f"/bin/sh -c {shlex.quote(cmd)}")
        lines.append(f"_rai_rc=$?; [ \"$_rai_rc\" -eq 0 ] || _rai_end {i} \"$_rai_rc\"")
    lines.append("_rai_end 0 0")
    return "\n".join(lines) + "\n"


def size_text(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            v = n / div
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} bytes"


def duration_text(seconds: float) -> str:
    if seconds != int(seconds) and seconds < 60:
        return f"{seconds:.1f}s"
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return ((f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")) or "0s"


def short(text: str, width: int = 60) -> str:
    """The first line of `text`, cut to `width` characters (with ... when anything was left out)."""
    stripped = text.strip()
    line = stripped.splitlines()[0] if stripped else stripped
    if len(line) > width or line != stripped:
        line = line[:width - 3].rstrip() + "..."
    return line


class JobMarkers:
    """What the markers told: which command runs, how the script ended. Feeds status lines to the sink."""

    def __init__(self, job_id: str, commands: list[str], status):
        self.job_id = job_id
        self.commands = commands
        self.status = status
        self.ended = False  # the stdout end marker came
        self.eof = False  # the stderr end marker came too
        self.ended_at = 0.0  # time.monotonic() of the end marker
        self.failed: int | None = None
        self.rc: int | None = None
        self.oom_kills: int | None = None
        self.build_empty = False  # the script found nothing in /build after the commands

    @property
    def done(self) -> bool:
        return self.ended and self.eof

    def marker(self, kind: str, words: list[str]) -> None:
        try:
            if words[0] == "step" and kind == "stdout":
                self.status(f"$ {self.commands[int(words[1]) - 1]}")
            elif words[0] == "end" and kind == "stdout" and not self.ended:
                self.failed = int(words[1]) or None
                self.rc = int(words[2])
                self.oom_kills = int(words[3]) if words[3].isdigit() else None
                self.build_empty = words[4:5] == ["empty"]
                self.ended_at = time.monotonic()
                self.ended = True
            elif words[0] == "eof" and kind == "stderr":
                self.eof = True
        except (IndexError, ValueError):
            log.warning("job %s: unreadable marker %r", self.job_id, words)

    def outcome(self, memory_limit: int | None) -> tuple[JobState, str]:
        """State and message once the end marker came."""
        n, rc = self.failed, self.rc
        if n is None and rc == 0:
            count = len(self.commands)
            return JobState.succeeded, "the command succeeded" if count == 1 else f"all {count} commands succeeded"
        if n is None:
            return JobState.error, "the job could not enter /build"
        what = f"command {n} ({short(self.commands[n - 1])})"
        if self.oom_kills or (self.oom_kills is None and rc == 137 and memory_limit):
            limit = size_text(memory_limit) if memory_limit else "the node's memory"
            return JobState.oom, f"out of memory: the job's limit is {limit}; {what} was killed"
        if rc is not None and 128 < rc < 128 + signal.NSIG:
            try:
                name = signal.Signals(rc - 128).name
            except ValueError:
                name = f"signal {rc - 128}"
            return JobState.failed, f"{what} exited with {rc} ({name})"
        return JobState.failed, f"{what} exited with {rc}"
