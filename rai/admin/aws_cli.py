"""`rai-aws`: the operator's AWS chores — create the bucket and queues, print least-privilege IAM policies,
look at dead letters. Runs with the operator's own AWS credentials (students hold none: rai-server acts for them).
"""

from __future__ import annotations

import json

import click

from rai.cli_support import run_cli
from rai.config import Config, load_config
from rai.errors import UserError


# long: the three IAM documents, read as a whole beside each other
def iam_policies(config: Config, account: str) -> dict[str, dict]:
    """The IAM policies of a deployment, each the least its holder needs.

    - raid-node: attached to the raid nodes' instance role (or IAM user): work the queues, read uploads,
      write outputs, sign output links;
    - rai-server: attached to the rai-server host's role (or IAM user): store the uploads it streams in,
      enqueue jobs, serve outputs. Students hold no AWS credential at all; rai-server acts for them.
    - operator: `rai-aws setup`, the console's queue view and `rai-aws dead-letters`.
    """
    store, broker = config.store, config.broker
    region = broker.region or store.region or "us-east-1"
    bucket = store.bucket or "BUCKET"
    queues = f"arn:aws:sqs:{region}:{account}:{broker.queue_prefix}*"
    dead_letters = [f"arn:aws:sqs:{region}:{account}:{broker.queue_prefix}*_dead"]
    if broker.dead_letter_queue:
        dead_letters.append(f"arn:aws:sqs:{region}:{account}:{broker.dead_letter_queue}")
    sqs_worker = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage",
                  "sqs:GetQueueUrl", "sqs:GetQueueAttributes"]
    if broker.create_queues:
        sqs_worker += ["sqs:CreateQueue", "sqs:SetQueueAttributes"]
    raid = [
        {"Sid": "WorkTheQueues", "Effect": "Allow", "Action": sqs_worker, "Resource": queues},
        {"Sid": "ReadUploadsAndSignOutputLinks", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:aws:s3:::{bucket}/uploads/*", f"arn:aws:s3:::{bucket}/outputs/*"]},
        {"Sid": "WriteOutputs", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": f"arn:aws:s3:::{bucket}/outputs/*"},
    ]
    if broker.dead_letter_queue and not broker.dead_letter_queue.startswith(broker.queue_prefix):
        raid[0]["Resource"] = [queues, dead_letters[-1]]
    if broker.provider != "sqs":
        raid = raid[1:]
    # rai-server: S3Store.put_file (PutObject, or CreateMultipartUpload/UploadPart/CompleteMultipartUpload, all
    # s3:PutObject; AbortMultipartUpload when a part fails) on uploads/, get_file (HeadObject, GetObject: both
    # s3:GetObject) on outputs/, SQSJobQueue.enqueue (GetQueueUrl once per queue, SendMessage). s3:ListBucket only
    # so that S3 answers 404 for outputs the lifecycle rule deleted (to a holder without it: 403, which would read
    # as refused credentials). It never creates a queue (a student names the queue) nor writes a dead letter.
    server = [
        {"Sid": "StoreUploads", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": f"arn:aws:s3:::{bucket}/uploads/*"},
        {"Sid": "ServeOutputs", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"arn:aws:s3:::{bucket}/outputs/*"},
        {"Sid": "MissingOutputsAre404", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": f"arn:aws:s3:::{bucket}"},
    ]
    if broker.provider == "sqs":
        server += [
            {"Sid": "QueueJobs", "Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
             "Resource": queues},
            {"Sid": "NoDeadLetters", "Effect": "Deny", "Action": ["sqs:SendMessage"],
             "Resource": dead_letters if len(dead_letters) > 1 else dead_letters[0]},
        ]
    operator = [
        {"Sid": "SetUpTheBucket", "Effect": "Allow", "Resource": f"arn:aws:s3:::{bucket}",
         "Action": ["s3:CreateBucket", "s3:ListBucket", "s3:PutBucketPublicAccessBlock",
                    "s3:PutEncryptionConfiguration", "s3:PutLifecycleConfiguration",
                    "s3:GetLifecycleConfiguration"]},
        {"Sid": "SetUpAndWatchTheQueues", "Effect": "Allow", "Resource": queues,
         "Action": ["sqs:CreateQueue", "sqs:SetQueueAttributes", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage"]},
        {"Sid": "ListQueues", "Effect": "Allow", "Action": ["sqs:ListQueues"], "Resource": "*"},
    ]

    def doc(statements):
        return {"Version": "2012-10-17", "Statement": statements}

    return {"raid-node": doc(raid), "rai-server": doc(server), "operator": doc(operator)}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.pass_context
def cli(ctx: click.Context, config_path) -> None:
    """AWS set-up for a rai deployment (S3 bucket, SQS queues, IAM policies)."""
    ctx.obj = config_path


def _config(config_path) -> Config:
    return load_config(config_path)


@cli.command()
@click.option("--arch", "archs", multiple=True, default=("amd64",), show_default=True,
              help="create the queue <broker.queue_prefix><arch> (repeat for several)")
@click.pass_obj
def setup(config_path, archs) -> int:
    """Make the bucket private, encrypted and self-cleaning; create the queues with their dead-letter queues."""
    config = _config(config_path)
    if config.store.provider == "s3":
        from rai.backends.s3_store import S3Store

        for line in S3Store(config.store).setup():
            click.echo(f"s3://{config.store.bucket}: {line}")
    if config.broker.provider == "sqs":
        from rai.backends.sqs_queue import BANDS, SQSJobQueue, band_queue

        queue = SQSJobQueue(config.broker)
        for arch in archs:
            name = f"{config.broker.queue_prefix}{arch}"
            queue.ensure_queue(name)
            bands = ""
            if config.scheduler.policy == "fair":  # fair share on SQS: one queue per priority band
                for band in range(1, BANDS):
                    queue.ensure_queue(band_queue(name, band))
                bands = f", fair-share bands {band_queue(name, 1)} .. {band_queue(name, BANDS - 1)}"
            click.echo(f"sqs: {name} (dead letters in {queue.dead_letter_queue_name(name)} after "
                       f"{config.broker.max_attempts} attempts{bands})")
    if config.store.provider != "s3" and config.broker.provider != "sqs":
        raise UserError("nothing to set up: neither store.provider is s3 nor broker.provider is sqs")
    return 0


@cli.command()
@click.option("--account", required=True, help="the AWS account id (12 digits)")
@click.option("--name", type=click.Choice(["raid-node", "rai-server", "operator"]), help="print one policy only")
@click.pass_obj
def policies(config_path, account, name) -> int:
    """Print the least-privilege IAM policies for this config (raid nodes, rai-server, operators), as JSON."""
    docs = iam_policies(_config(config_path), account)
    click.echo(json.dumps(docs[name] if name else docs, indent=2))
    return 0


@cli.command("dead-letters")
@click.argument("queue")
@click.option("-n", "limit", default=10, show_default=True, help="how many to show (at most 10)")
@click.pass_obj
def dead_letters(config_path, queue, limit) -> int:
    """Show jobs of QUEUE given up after too many attempts, with the reason."""
    config = _config(config_path)
    if config.broker.provider != "sqs":
        raise UserError("dead-letter queues exist with broker.provider: sqs only")
    from rai.backends.sqs_queue import SQSJobQueue

    for dead in SQSJobQueue(config.broker).dead_letters(queue, limit):
        try:
            job_id = json.loads(dead.body).get("job_id", "?")
        except ValueError:
            job_id = "(not a job request)"
        click.echo(f"{job_id}  {dead.reason}")
    return 0


def main() -> None:
    run_cli(cli)
