"""Every Redis key rai uses, named in one place; what each one holds is told by the module that owns it
(named beside each group below). All start with a prefix, `rai:` unless a test picks another; the
Redis ACL users of raid, rai-server and the console are granted `rai:*`.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "rai:"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = PREFIX

    # a job's log (rai.backends.redis_logs)
    def log(self, job_id: str) -> str:
        return f"{self.prefix}log:{job_id}"

    def log_seq(self, job_id: str) -> str:
        return f"{self.prefix}logseq:{job_id}"

    # the job queue (rai.backends.redis_queue, rai.backends.fair_queue)
    def queue(self, name: str) -> str:
        return f"{self.prefix}queue:{name}"

    def queues(self) -> str:
        return f"{self.prefix}queues"

    def fair_groups(self, queue: str) -> str:
        return f"{self.prefix}fair:{queue}:groups"

    def fair_group(self, queue: str, group: str) -> str:
        return f"{self.prefix}fair:{queue}:g:{group}"

    def fair_wake(self, queue: str) -> str:
        return f"{self.prefix}fair:{queue}:wake"

    def fair_sqs(self, queue: str, what: str) -> str:
        """The fair-share SQS queue's bookkeeping (rai.backends.sqs_fair_queue): `waiting`, `band`, `since`."""
        return f"{self.prefix}fair:{queue}:sqs:{what}"

    # live state (rai.live.board)
    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    def waiting(self, queue: str) -> str:
        return f"{self.prefix}waiting:{queue}"

    def cancel(self, job_id: str) -> str:
        return f"{self.prefix}cancel:{job_id}"

    def node(self, name: str) -> str:
        return f"{self.prefix}node:{name}"

    def nodes(self) -> str:
        return f"{self.prefix}nodes"

    def drain(self, node: str) -> str:
        return f"{self.prefix}drain:{node}"

    def slots(self, username: str) -> str:
        return f"{self.prefix}slots:{username}"

    def depth(self, queue: str) -> str:
        return f"{self.prefix}depth:{queue}"

    def depth_lock(self, queue: str, bucket: int) -> str:
        """Taken by the one node that records `queue`'s depth for this heartbeat interval (raid.heartbeat)."""
        return f"{self.prefix}depthlock:{queue}:{bucket}"

    # fair share and ETAs (rai.live.usage)
    def usage(self, by: str) -> str:
        return f"{self.prefix}usage:{by}"

    def durations(self, queue: str) -> str:
        return f"{self.prefix}durations:{queue}"

    # quotas (rai.live.quotas)
    def quota_jobs(self, username: str) -> str:
        return f"{self.prefix}quota:jobs:{username}"

    def quota_gpu(self, username: str) -> str:
        return f"{self.prefix}quota:gpu:{username}"

    # ranked projects' public part, published by raid (rai.domain.projects)
    def projects(self) -> str:
        return f"{self.prefix}projects"

    # rai-server (raiserver.auth, raiserver.ratelimit, raiserver.jobs)
    def nonce(self, access_key: str, nonce: str) -> str:
        return f"{self.prefix}nonce:{access_key}:{nonce}"

    def rate(self, username: str) -> str:
        return f"{self.prefix}rate:{username}"

    def upload(self, job_id: str) -> str:
        return f"{self.prefix}upload:{job_id}"


KEYS = RedisKeys()  # the keys under the default prefix
