"""Durations and sizes as people write them in configs and specs: `90s`, `1h30m`, `16g`, `512MiB`."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(value: str | int | float) -> float:
    """Seconds in `value`; raises ValueError with what is accepted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = str(value).strip().replace(" ", "")
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos or not m.group(0):
            break
        total += float(m.group(1)) * _SECONDS[(m.group(2) or "").lower() or None]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 30m, 1h or 1h30m")
    return total


def parse_size(value: str | int) -> int:
    """Bytes in `value` (`16g`, `512m`, `1GiB`, plain numbers are bytes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size: write e.g. 512m, 16g or 1GiB")
    return int(float(m.group(1)) * _BYTES[m.group(2).lower()])


def plural(n: int, word: str) -> str:
    """`1 job`, `3 jobs`."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_size(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}"
