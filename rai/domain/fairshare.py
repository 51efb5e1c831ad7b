"""Fair-share arithmetic, as pure functions: the queue backends and the console use the same numbers.

- usage: what a user (or team) ran lately, in *weighted job-seconds*: each job's seconds times its weight
  (`job_weight`: its GPUs, at least 1 for a CPU-only job), decayed by half every `half_life` seconds.
- priority: decayed usage minus `age_weight` times the seconds the job has waited; the **lowest** runs next,
  so the user who ran least goes first, and a job that waits long enough beats anyone (nothing starves).
- pick: which waiting head runs next; order: the order the waiting jobs run in; eta: when one may start.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_HALF_LIFE = 3600.0  # seconds: a class's evening fades within a few hours
DEFAULT_AGE_WEIGHT = 0.01  # usage-seconds one second of waiting is worth: 100 s waited offsets 1 s used
DEFAULT_TYPICAL = 60.0  # seconds a job is assumed to take when none has run lately
# The least a job is taken to cost, however quick the queue's recent jobs were: a claim charges its user a
# typical job, and the SQS bands' starvation guard waits in typical jobs, so a typical of 0 (jobs that fail at
# once, on deadline night) would charge nothing and let every band jump the queue.
MIN_TYPICAL = 1.0


def job_weight(gpus: int = 0) -> float:
    """How much one second of the job counts: its GPUs, and 1 for a job without a GPU (its CPU share)."""
    return float(max(1, gpus))


def decayed_usage(usage: float, at: float, now: float, half_life: float = DEFAULT_HALF_LIFE) -> float:
    """`usage` recorded at time `at` (seconds), as it counts at `now`: halved every `half_life` seconds."""
    if usage <= 0:
        return 0.0
    if half_life <= 0:
        return 0.0
    return usage * math.pow(0.5, max(0.0, now - at) / half_life)


def decayed_span(start: float, end: float, now: float, half_life: float = DEFAULT_HALF_LIFE) -> float:
    """Seconds run from `start` to `end` (before `now`) as they count at `now`, each second decayed as
    `decayed_usage` decays it: the exact integral, so a long job counts most what it ran recently."""
    hi = min(end, now)
    if hi <= start:
        return 0.0
    if math.isinf(half_life):
        return hi - start
    if half_life <= 0:
        return 0.0
    weight_then, weight_at_end = decayed_usage(1.0, start, now, half_life), decayed_usage(1.0, hi, now, half_life)
    return half_life / math.log(2) * (weight_at_end - weight_then)


def charged(usage: float, at: float, now: float, amount: float, half_life: float = DEFAULT_HALF_LIFE) -> float:
    """The usage after charging `amount` at `now` to a usage of `usage` recorded at `at`."""
    return decayed_usage(usage, at, now, half_life) + amount


def priority(usage: float, waited: float, age_weight: float = DEFAULT_AGE_WEIGHT) -> float:
    """The job's priority: its group's decayed usage less its age's worth; the lowest runs next."""
    return usage - age_weight * max(0.0, waited)


@dataclass
class Head:
    """The oldest waiting job of one group (user or team)."""

    group: str
    usage: float  # the group's decayed usage now
    waited: float  # seconds its oldest waiting job has waited


def pick(heads: Sequence[Head], age_weight: float = DEFAULT_AGE_WEIGHT) -> str | None:
    """The group whose head job runs next (lowest priority; ties: the longest waiting), None when none waits."""
    if not heads:
        return None
    best = min(heads, key=lambda h: (priority(h.usage, h.waited, age_weight), -h.waited, h.group))
    return best.group


def order(groups: Mapping[str, Sequence[float]], usage: Mapping[str, float], charge: float = DEFAULT_TYPICAL,
          age_weight: float = DEFAULT_AGE_WEIGHT) -> list[tuple[str, int]]:
    """The order the waiting jobs run in if nothing else arrives, as (group, index in its waiting jobs):
    `groups` gives each group's waiting jobs as their waits, oldest first; each job taken charges its group
    `charge` (its expected usage), as a claim does. The same choice as `pick` at each step (only the group
    just taken from changes its head, so a heap of the heads keeps it O(n log groups))."""
    used = {g: usage.get(g, 0.0) for g, w in groups.items() if w}

    def head(g: str, i: int) -> tuple[float, float, str, int]:
        waited = groups[g][i]
        return (priority(used[g], waited, age_weight), -waited, g, i)

    heap = [head(g, 0) for g in used]
    heapq.heapify(heap)
    out: list[tuple[str, int]] = []
    while heap:
        _, _, g, i = heapq.heappop(heap)
        out.append((g, i))
        used[g] += charge
        if i + 1 < len(groups[g]):
            heapq.heappush(heap, head(g, i + 1))
    return out


def eta(ahead: int, capacity: int, typical: float = DEFAULT_TYPICAL) -> float:
    """Seconds until a job with `ahead` jobs before it may start on `capacity` job slots, a job taking
    `typical` seconds: `ahead // capacity` full rounds, plus half a job (running ones are half done)."""
    slots = max(1, capacity)
    rounds = ahead // slots
    return typical * (rounds + 0.5)


def about(seconds: float, short: bool = False) -> str:
    """A wait as a person says it: "under a minute", "about 6 min", "about 2 h"; `short`, for a narrow
    column: "<1 min", "~6 min", "~2 h"."""
    if seconds < 60:
        return "<1 min" if short else "under a minute"
    approx = "~" if short else "about "
    if seconds < 5400:
        return f"{approx}{round(seconds / 60)} min"
    return f"{approx}{seconds / 3600:.0f} h"
