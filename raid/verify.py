"""Who sent a job, and may they run it: signature, freshness, account, role limits."""

from __future__ import annotations

from dataclasses import dataclass

from rai.backends.auth import Accounts, authenticate
from rai.config import Config, DockerConfig, RoleLimits
from rai.domain.image_policy import image_refusal
from rai.domain.models import Account, JobRequest, utcnow
from rai.domain.spec import JobSpec
from rai.errors import AuthError


class Refused(Exception):
    """The job must not run; the message goes to the submitter as it is (the job runner ends the job with it)."""


class MustWait(Exception):
    """The job may run, but not now: it goes back to the queue; the message tells the submitter why."""


@dataclass
class Limits:
    time: float
    memory: int
    network: bool
    gpus: int
    cpus: float | None = None


def verify_request(req: JobRequest, accounts: Accounts, max_age: float) -> Account:
    try:
        account = authenticate(accounts, req, "request")
    except AuthError as e:
        raise Refused(f"refused: {e.message}") from None
    if not req.upload_key.startswith(f"uploads/{account.username}/"):  # another user's upload: never run it
        raise Refused("refused: the job names an upload that is not yours; submit again with `rai submit`")
    age = (utcnow() - req.submitted_at).total_seconds()
    if age > max_age:
        raise Refused(f"refused: the request is {age / 3600:.1f} hours old (stale); submit again")
    if age < -300:
        raise Refused("refused: the request is dated in the future; check your computer's clock")
    return account


def role_limits(config: Config, account: Account, spec: JobSpec, queue: str) -> Limits:
    """The limits the job runs under: the spec's, capped by the role's and the server's."""
    role: RoleLimits = config.roles.get(account.role) or RoleLimits()
    server: DockerConfig = config.docker
    if account.role not in config.roles:
        raise Refused(f"refused: role {account.role!r} is not configured on this server")
    if role.queues is not None and queue not in role.queues:
        raise Refused(f"refused: role {account.role} may not use queue {queue} (allowed: {', '.join(role.queues)})")
    if spec.network and not (role.network and server.allow_network):
        raise Refused(
            f"refused: network access is not allowed for role {account.role}; "
            "remove resources.limits.network from rai_build.yml"
        )
    if role.gpus is not None and spec.gpus > role.gpus:
        raise Refused(f"refused: {spec.gpus} GPUs asked, role {account.role} may use {role.gpus}")
    time = min(x for x in (spec.resources.limits.time, role.time_limit, server.time_limit) if x is not None)
    memory = min(x for x in (spec.resources.limits.memory, role.memory_limit, server.memory_limit) if x is not None)
    cpus = [x for x in (spec.resources.limits.cpus, server.cpu_limit) if x is not None]
    if spec.commands.build_image is None:  # a built image's FROM lines are checked when it builds
        refusal = image_refusal(spec.rai.image, config, account.role)
        if refusal is not None:
            raise Refused(f"refused: {refusal}")
    return Limits(time=time, memory=memory, network=spec.network, gpus=spec.gpus, cpus=min(cpus) if cpus else None)


def jobs_at_once_limit(config: Config, account: Account) -> int | None:
    """How many jobs the account's role runs at once; None: no limit."""
    role = config.roles.get(account.role)
    return role.jobs_at_once if role else None


def over_jobs_at_once(config: Config, account: Account, running: int) -> str | None:
    """Why the job waits when the user already runs as many jobs as the role allows at once; None: it may start."""
    limit = jobs_at_once_limit(config, account)
    if limit is None or running < limit:
        return None
    return (f"waiting: {running} of your jobs are running and role {account.role} runs at most {limit} at once; "
            "this job goes back to the queue and starts when one of them ends")


def check_jobs_at_once(config: Config, account: Account, running: int) -> None:
    """Raise MustWait when the user already runs as many jobs as the role allows at once."""
    reason = over_jobs_at_once(config, account, running)
    if reason is not None:
        raise MustWait(reason)
