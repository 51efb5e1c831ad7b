"""Job queue on Amazon SQS: one standard queue per architecture (`rai_amd64`, ...), each with a dead-letter queue.

- claim: long poll (up to 20 s); the message stays invisible to other nodes for `visibility_timeout`,
  which raid's keep-alive extends (ChangeMessageVisibility) while the job runs, so a slow job is
  never run twice and a crashed node's job comes back when its timeout lapses.
- attempts: SQS's ApproximateReceiveCount. raid ends a job delivered more than `max_attempts` times
  with a final log entry and record saying so, then moves it to the dead-letter queue with the reason
  as a message attribute (`dead_letter`). SQS's own redrive (maxReceiveCount = max_attempts + 2) is
  the safety net for a message no node could even end.
- release: visibility 0, the job is at once claimable again (it counts as one more delivery).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass

import botocore.exceptions

from rai.backends.aws import AwsCredentials, error_code, make_client, translate
from rai.backends.queue import ClaimedJob, QueueDepth
from rai.config import BrokerConfig
from rai.errors import NotFound, UserError

log = logging.getLogger("rai.sqs")

MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
MAX_WAIT = 20  # SQS's longest long poll, seconds
MAX_VISIBILITY = 12 * 3600  # SQS's longest visibility timeout
DEAD_RETENTION = 14 * 86400  # dead letters are kept as long as SQS allows, for the post-mortem
REASON = "rai-reason"
STALE_RECEIPT = {"InvalidParameterValue", "ReceiptHandleIsInvalid", "MessageNotInflight",
                 "AWS.SimpleQueueService.MessageNotInflight"}


@dataclass
class SQSClaimedJob(ClaimedJob):
    receipt_handle: str = ""  # what SQS needs to extend, release or delete this delivery


@dataclass
class DeadLetter:
    message_id: str
    body: str
    reason: str
    queue: str


class SQSJobQueue:
    """The JobQueue port on SQS. Thread-safe: raid's worker slots share one instance."""

    def __init__(self, cfg: BrokerConfig, credentials: AwsCredentials | None = None, client=None):
        self.cfg = cfg
        self.sqs = client or make_client("sqs", region=cfg.region, endpoint_url=cfg.endpoint_url,
                                         access_key_id=cfg.access_key_id, secret_access_key=cfg.secret_access_key,
                                         credentials=credentials, max_pool_connections=64)
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- names and urls
    def dead_letter_queue_name(self, queue: str) -> str:
        """The dead-letter queue of `queue`; the fair-share bands of a queue (`<queue>_p<k>`) share its one."""
        return self.cfg.dead_letter_queue or f"{band_base(queue)}_dead"

    def _is_dead_letter_queue(self, name: str) -> bool:
        return name == self.cfg.dead_letter_queue or name.endswith("_dead")

    def _visibility(self) -> int:
        return max(1, min(MAX_VISIBILITY, math.ceil(self.cfg.visibility_timeout)))

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, what, "SQS") from e

    def _url(self, queue: str, create: bool | None = None) -> str:
        url = self._urls.get(queue)
        if url:
            return url
        try:
            url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        except botocore.exceptions.ClientError as e:
            if error_code(e) not in MISSING:
                raise translate(e, f"finding the queue {queue}", "SQS") from e
            if not (self.cfg.create_queues if create is None else create):
                raise NotFound(f"there is no SQS queue {queue}",
                               hint="create it with `rai-aws setup`, or let raid create it (broker.create_queues)") \
                    from None
            url = self.ensure_queue(queue)
        except botocore.exceptions.BotoCoreError as e:
            raise translate(e, f"finding the queue {queue}", "SQS") from e
        self._urls[queue] = url
        return url

    def ensure_queue(self, queue: str) -> str:
        """Create `queue` and its dead-letter queue (idempotent); returns the queue's URL."""
        if self._is_dead_letter_queue(queue):
            raise UserError(f"{queue} is a dead-letter queue name; pick a queue name not ending in _dead")
        with self._lock:
            dead = self.dead_letter_queue_name(queue)
            what = f"creating the queue {queue}"
            dead_url = self._call(what, self.sqs.create_queue, QueueName=dead,
                                  Attributes={"MessageRetentionPeriod": str(DEAD_RETENTION)})["QueueUrl"]
            dead_arn = self._call(what, self.sqs.get_queue_attributes, QueueUrl=dead_url,
                                  AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(self.cfg.max_attempts + 2)}
            attributes = {"VisibilityTimeout": str(self._visibility()), "RedrivePolicy": json.dumps(redrive),
                          "MessageRetentionPeriod": str(DEAD_RETENTION)}
            try:
                url = self.sqs.create_queue(QueueName=queue, Attributes=attributes)["QueueUrl"]
            except botocore.exceptions.ClientError as e:
                if error_code(e) not in ("QueueAlreadyExists", "QueueNameExists"):
                    if error_code(e) in ("AccessDenied", "AccessDeniedException"):
                        raise NotFound(f"there is no SQS queue {queue}, and these credentials may not create it",
                                       hint="ask the course staff: no raid node serves this queue yet") from None
                    raise translate(e, what, "SQS") from e
                # It exists with other attributes (an older config): bring them up to date.
                url = self._call(what, self.sqs.get_queue_url, QueueName=queue)["QueueUrl"]
                self._call(what, self.sqs.set_queue_attributes, QueueUrl=url, Attributes=attributes)
            self._urls[queue] = url
            self._urls[dead] = dead_url
            return url

    # --- the port
    def enqueue(self, queue: str, body: str) -> str:
        url = self._url(queue)
        return self._call(f"queueing the job on {queue}", self.sqs.send_message, QueueUrl=url,
                          MessageBody=body)["MessageId"]

    def claim(self, queue: str, consumer: str, block: float = 5.0) -> SQSClaimedJob | None:
        url = self._url(queue)
        wait = max(0, min(MAX_WAIT, math.ceil(block)))
        reply = self._call(f"taking a job from {queue}", self.sqs.receive_message, QueueUrl=url,
                           MaxNumberOfMessages=1, WaitTimeSeconds=wait, VisibilityTimeout=self._visibility(),
                           MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])
        messages = reply.get("Messages") or []
        if not messages:
            return None
        m = messages[0]
        attempts = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return SQSClaimedJob(queue=queue, message_id=m["MessageId"], body=m["Body"], attempts=attempts,
                             receipt_handle=m["ReceiptHandle"])

    def keep_alive(self, job: ClaimedJob, consumer: str) -> bool:
        """Extend the job's invisibility; False when this delivery is no longer ours (acked, or delivered
        again after its visibility lapsed): the caller should stop working on it."""
        try:
            self.sqs.change_message_visibility(QueueUrl=self._url(job.queue), ReceiptHandle=_receipt(job),
                                               VisibilityTimeout=self._visibility())
            return True
        except botocore.exceptions.ClientError as e:
            if error_code(e) in STALE_RECEIPT:
                log.warning("job message %s on %s is no longer held by %s", job.message_id, job.queue, consumer)
                return False
            raise translate(e, f"keeping job {job.message_id} claimed", "SQS") from e
        except botocore.exceptions.BotoCoreError as e:
            raise translate(e, f"keeping job {job.message_id} claimed", "SQS") from e

    def ack(self, job: ClaimedJob) -> None:
        self._call(f"removing job {job.message_id} from {job.queue}", self.sqs.delete_message,
                   QueueUrl=self._url(job.queue), ReceiptHandle=_receipt(job))

    def release(self, job: ClaimedJob) -> None:
        self._call(f"handing job {job.message_id} back", self.sqs.change_message_visibility,
                   QueueUrl=self._url(job.queue), ReceiptHandle=_receipt(job), VisibilityTimeout=0)

    def dead_letter(self, job: ClaimedJob, reason: str) -> None:
        """Move the job to its dead-letter queue, the reason kept beside it; it is never delivered again."""
        dead = self.dead_letter_queue_name(job.queue)
        attrs = {REASON: {"DataType": "String", "StringValue": reason[:4000] or "-"},
                 "rai-queue": {"DataType": "String", "StringValue": job.queue},
                 "rai-attempts": {"DataType": "Number", "StringValue": str(job.attempts)}}
        self._call(f"moving job {job.message_id} to {dead}", self.sqs.send_message,
                   QueueUrl=self._url(dead, create=False), MessageBody=job.body, MessageAttributes=attrs)
        self.ack(job)

    def dead_letters(self, queue: str, limit: int = 10) -> list[DeadLetter]:
        """A look at up to `limit` dead letters of `queue` (they stay where they are)."""
        dead = self.dead_letter_queue_name(queue)
        reply = self._call(f"reading {dead}", self.sqs.receive_message, QueueUrl=self._url(dead, create=False),
                           MaxNumberOfMessages=max(1, min(10, limit)), VisibilityTimeout=0, WaitTimeSeconds=0,
                           MessageAttributeNames=["All"])
        out = []
        for m in reply.get("Messages") or []:
            attrs = m.get("MessageAttributes") or {}
            reason = attrs.get(REASON, {}).get("StringValue") or "moved by SQS after too many deliveries"
            source = attrs.get("rai-queue", {}).get("StringValue") or queue
            out.append(DeadLetter(m["MessageId"], m["Body"], reason, source))
        return out

    def depth(self, queue: str) -> QueueDepth:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        a = self._call(f"reading the depth of {queue}", self.sqs.get_queue_attributes, QueueUrl=self._url(queue),
                       AttributeNames=names)["Attributes"]
        depth = QueueDepth(queue=queue,
                           waiting=int(a.get(names[0], 0)) + int(a.get(names[2], 0)),
                           running=int(a.get(names[1], 0)),
                           oldest_waiting_age=None)  # SQS tells this only through CloudWatch
        try:
            dead_url = self._url(self.dead_letter_queue_name(queue), create=False)
            d = self.sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=[names[0]])["Attributes"]
            depth.dead_lettered = int(d.get(names[0], 0))  # shown by the console beside waiting/running
        except (UserError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            pass
        return depth

    def queues(self) -> list[str]:
        names: list[str] = []
        kwargs = {"QueueNamePrefix": self.cfg.queue_prefix, "MaxResults": 1000}
        while True:
            reply = self._call("listing the queues", self.sqs.list_queues, **kwargs)
            names += [u.rstrip("/").rsplit("/", 1)[-1] for u in reply.get("QueueUrls") or []]
            token = reply.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        # a fair-share band's queue (`<queue>_p<k>`) is part of its queue, not a queue of its own
        return sorted(n for n in set(names) if not self._is_dead_letter_queue(n) and band_base(n) == n)


BANDS = 4  # fair share on SQS: priority bands per queue (rai.backends.sqs_fair_queue)


def band_queue(queue: str, band: int) -> str:
    """The SQS queue of fair-share band `band` of `queue`: the queue itself for band 0, else `<queue>_p<band>`."""
    return queue if band == 0 else f"{queue}_p{band}"


def band_base(name: str) -> str:
    """The queue a band's SQS queue belongs to (`rai_amd64_p2` -> `rai_amd64`); other names unchanged."""
    head, _, tail = name.rpartition("_p")
    return head if head and tail.isdigit() and 0 < int(tail) < BANDS else name


def _receipt(job: ClaimedJob) -> str:
    handle = getattr(job, "receipt_handle", "")
    if not handle:
        raise UserError(f"job {job.message_id} was not claimed from SQS (no receipt handle)")
    return handle
