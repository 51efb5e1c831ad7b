"""The ports and the backend the config picks for each; nothing else knows which one runs."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from rai.config import Config

if TYPE_CHECKING:  # the backends themselves are imported when first used: a client never opens most
    import redis

    from rai.backends.auth import Accounts
    from rai.backends.db import Database
    from rai.backends.logs import LogStream
    from rai.backends.mail import Mailer
    from rai.backends.queue import JobQueue
    from rai.backends.store import ObjectStore
    from rai.live.board import LiveBoard
    from rai.live.usage import UsageLedger


class Backends:
    """Lazily opened backends for one config; share one per process."""

    def __init__(self, config: Config):
        self.config = config

    @cached_property
    def redis(self) -> redis.Redis:
        from rai.live.redis_server import connect

        return connect(self.config.pubsub.url, start_local=self.config.pubsub.start_local)

    @cached_property
    def queue(self) -> JobQueue:
        cfg = self.config.broker
        if cfg.provider == "sqs":
            if self.config.scheduler.policy == "fair":
                from rai.backends.sqs_fair_queue import FairSQSJobQueue

                return FairSQSJobQueue(cfg, self.usage, self.redis, age_weight=self.config.scheduler.age_weight)
            from rai.backends.sqs_queue import SQSJobQueue

            return SQSJobQueue(cfg)
        if self.config.scheduler.policy == "fair":
            from rai.backends.fair_queue import FairRedisJobQueue

            return FairRedisJobQueue(self.redis, self.usage, visibility_timeout=cfg.visibility_timeout,
                                     age_weight=self.config.scheduler.age_weight)
        from rai.backends.redis_queue import RedisJobQueue

        return RedisJobQueue(self.redis, visibility_timeout=cfg.visibility_timeout)

    @cached_property
    def usage(self) -> UsageLedger:
        """Recent usage per user or team and recent durations per queue (rai.live.usage), in Redis."""
        from rai.live.usage import UsageLedger

        s = self.config.scheduler
        return UsageLedger(self.redis, half_life=s.half_life, by=s.by)

    @cached_property
    def logs(self) -> LogStream:
        from rai.backends.redis_logs import RedisLogStream

        return RedisLogStream(self.redis, max_entries=self.config.pubsub.max_entries)

    @cached_property
    def store(self) -> ObjectStore:
        cfg = self.config.store
        if cfg.provider == "s3":
            from rai.backends.s3_store import S3Store

            return S3Store(cfg)
        from rai.backends.store import LocalStore

        return LocalStore(cfg.local_path())

    @cached_property
    def db(self) -> Database:
        cfg = self.config.database
        if cfg.provider == "mongodb":
            from rai.backends.mongo_db import MongoDatabase

            return MongoDatabase(cfg)
        from rai.backends.db import SQLiteDatabase

        return SQLiteDatabase(cfg.sqlite_path())

    @cached_property
    def accounts(self) -> Accounts:
        cfg = self.config.auth
        if cfg.provider == "auth0":
            from rai.backends.auth0_accounts import Auth0Accounts

            return Auth0Accounts(cfg, app_secret=self.config.app_secret())
        from rai.backends.auth import DatabaseAccounts

        return DatabaseAccounts(self.db)

    @cached_property
    def mailer(self) -> Mailer:
        cfg = self.config.email
        if cfg.provider == "mailgun":
            from rai.backends.mailgun_mail import MailgunMailer

            return MailgunMailer(cfg)
        from rai.backends.outbox_mail import OutboxMailer

        return OutboxMailer(cfg.outbox_path(), sender=cfg.sender)

    @cached_property
    def live(self) -> LiveBoard:
        from rai.live.board import LiveBoard

        return LiveBoard(self.redis)
