"""May a verified job start on this node now: GPUs enough here (else it waits for a node that has them, or is
refused when no node on its queue has), and one of its user's jobs_at_once slots."""

from __future__ import annotations

from rai.config import Config
from rai.domain.models import Account
from rai.live.board import LiveBoard
from rai.units import plural
from raid.lease import JobLease
from raid.outcome import Outcome, Waits, refused
from raid.verify import jobs_at_once_limit, over_jobs_at_once


def gpu_shortfall(live: LiveBoard, queue: str, node: str, offered: int, wanted: int) -> Outcome | None:
    """None when this node (offering `offered` GPUs) has the `wanted` ones; else Waits for a live node on the
    queue that has them, or, when none has, a refusal that says what to do."""
    if wanted <= offered:
        return None
    able = [n.name for n in live.serving(queue)  # alive (a heartbeat), draining included: a drain is for a while
            if n.name != node and n.heartbeat is not None and n.heartbeat.offered_gpus >= wanted]
    asks = f"the job asks for {plural(wanted, 'GPU')}"
    has = f"node {node} has {offered or 'none'}"
    if able:
        return Waits(f"waiting: {asks} and {has}; it goes back to the queue for a node that has them "
                     f"({', '.join(sorted(able))})", elsewhere=True)
    return refused(f"refused: {asks} and no node on queue {queue} has {'them' if wanted != 1 else 'one'} "
                   f"({has}); remove resources.gpu.count from rai_build.yml to run without a GPU, or ask your "
                   "course staff which queue has GPUs")


def take_jobs_at_once_slot(config: Config, account: Account, lease: JobLease) -> Waits | None:
    """Take one of the user's jobs_at_once slots (the lease keeps it while the job runs); Waits when the user
    already runs as many jobs as the role allows at once. None: no limit, or a slot taken."""
    limit = jobs_at_once_limit(config, account)
    if limit is None:
        return None
    held = lease.take_slot(limit)
    reason = over_jobs_at_once(config, account, held) if held is not None else None
    return Waits(reason) if reason is not None else None
