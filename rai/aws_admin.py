"""`rai-aws`: the operator's AWS chores — create the bucket and queues, print least-privilege IAM policies,
look at dead letters. Runs with the operator's own AWS credentials (never a student's).
"""

from __future__ import annotations

import json

import click

from rai.cli_support import run_cli
from rai.config import Config, load_config
from rai.errors import UserError


def iam_policies(config: Config, account: str, raid_principal: str) -> dict[str, dict]:
    """The IAM policies of a deployment, each the least its holder needs.

    - raid-node: attached to the raid nodes' instance role (or IAM user);
    - upload-role-trust / upload-role-permissions: the role raid assumes for clients (each client's
      session policy narrows it further to its own prefixes);
    - operator: `rai-aws setup`, the console's queue view and `rai-aws dead-letters`.
    """
    store, broker = config.store, config.broker
    region = broker.region or store.region or "us-east-1"
    bucket = store.bucket or "BUCKET"
    queues = f"arn:aws:sqs:{region}:{account}:{broker.queue_prefix}*"
    upload_role = store.upload_role_arn or f"arn:aws:iam::{account}:role/rai-upload"
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
        {"Sid": "VendUploadCredentials", "Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": upload_role},
    ]
    if broker.dead_letter_queue and not broker.dead_letter_queue.startswith(broker.queue_prefix):
        raid[0]["Resource"] = [queues, f"arn:aws:sqs:{region}:{account}:{broker.dead_letter_queue}"]
    if broker.provider != "sqs":
        raid = raid[1:]
    upload = [
        {"Sid": "UploadProjects", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": f"arn:aws:s3:::{bucket}/uploads/*"},
        {"Sid": "ReadOutputs", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"arn:aws:s3:::{bucket}/outputs/*"},
    ]
    if broker.provider == "sqs":
        upload.append({"Sid": "QueueJobs", "Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
                       "Resource": queues})
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

    return {
        "raid-node": doc(raid),
        "upload-role-trust": doc([{"Effect": "Allow", "Principal": {"AWS": raid_principal},
                                   "Action": "sts:AssumeRole"}]),
        "upload-role-permissions": doc(upload),
        "operator": doc(operator),
    }


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
        from rai.backends.sqs_queue import SQSJobQueue

        queue = SQSJobQueue(config.broker)
        for arch in archs:
            name = f"{config.broker.queue_prefix}{arch}"
            queue.ensure_queue(name)
            click.echo(f"sqs: {name} (dead letters in {queue.dead_letter_queue_name(name)} after "
                       f"{config.broker.max_attempts} attempts)")
    if config.store.provider != "s3" and config.broker.provider != "sqs":
        raise UserError("nothing to set up: neither store.provider is s3 nor broker.provider is sqs")
    return 0


@cli.command()
@click.option("--account", required=True, help="the AWS account id (12 digits)")
@click.option("--raid-principal", required=True, help="ARN of the raid nodes' role (or IAM user)")
@click.option("--name", type=click.Choice(["raid-node", "upload-role-trust", "upload-role-permissions", "operator"]),
              help="print one policy only")
@click.pass_obj
def policies(config_path, account, raid_principal, name) -> int:
    """Print the least-privilege IAM policies for this config, as JSON."""
    docs = iam_policies(_config(config_path), account, raid_principal)
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
