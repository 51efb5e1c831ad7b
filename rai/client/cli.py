"""`rai`: the submitter's client.

Exit codes: 0 the job succeeded, 1 it did not (failed, timeout, out of memory, cancelled,
refused), 2 bad input, 3 a service does not answer, 4 not found, 5 credentials refused,
130 interrupted (the job goes on).
"""

from __future__ import annotations

import functools
import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rai import __version__
from rai.cli_support import run_cli
from rai.client.cli_ranking import COMMANDS as RANKING_COMMANDS

# Start-up is part of every command: `rai --help`, `rai version` and `rai whoami` load click and (whoami)
# the YAML profile only. rich, httpx, pydantic and the client's modules are imported by the commands that use
# them; tests/test_client_startup.py holds that line.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from rai.client.core import Client
    from rai.domain.models import JobEnd, JobRecord


@functools.cache
def err() -> Console:
    """Messages to stderr; piped or redirected: whole lines, never cut."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class Context:
    def __init__(self, config_path: str | None, profile: str | None):
        self.config_path = config_path
        self.profile_arg = profile

    def client(self) -> Client:
        from rai.client.core import Client
        from rai.client.profile import load_profile
        from rai.config import load_config

        client = Client(load_config(self.config_path), load_profile(self.profile_arg))
        started()
        return client


def started() -> None:
    """The client's modules are loaded: what they made lives as long as the process, so it is frozen (never
    scanned again) and the garbage collector, off while they loaded (main), goes back on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def print_entries(entries, out=None, errs=None, quiet_status: bool = False) -> JobEnd | None:
    """Write a job's log entries as they come; returns its end, or None when the log stopped early."""
    from rai.domain.models import LogKind

    out = out or sys.stdout
    errs = errs or sys.stderr
    for entry in entries:
        if entry.kind == LogKind.stdout:
            out.write(entry.body)
            out.flush()
        elif entry.kind == LogKind.stderr:
            errs.write(entry.body)
            errs.flush()
        elif entry.kind == LogKind.status:
            if not quiet_status:
                err().print(f"[dim]» {entry.body}[/dim]")
        elif entry.kind == LogKind.end:
            return entry.end
    return None


def print_summary(job_id: str, end: JobEnd) -> None:
    from rai.domain.models import JobState
    from rai.units import format_duration

    ok = end.state == JobState.succeeded
    colour = "green" if ok else "red"
    code = "-" if end.exit_code is None else str(end.exit_code)
    err().print(
        f"[bold {colour}]{end.state.value}[/] job {job_id}  exit {code}  {format_duration(end.duration)}"
        + (f"\n  {end.message}" if end.message else "")
    )
    if end.output_key:
        link = end.output_url if (end.output_url or "").startswith(("https://", "http://")) else None
        err().print(f"  outputs: {link or 'kept on the server'}  (fetch with `rai get {job_id} -o DIR`)")


class UploadBar:
    """A rich progress bar for the upload, shown on a terminal only and gone once the upload ends."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> UploadBar:
        return self

    def advance(self, n: int, total: int | None) -> None:
        if self.progress is None or self.task is None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

            self.progress = Progress("[dim]» uploading[/dim]", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                     TimeRemainingColumn(), console=err(), transient=True)
            self.progress.start()
            self.task = self.progress.add_task("upload", total=total)
        self.progress.advance(self.task, n)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def place_text(position: tuple | None) -> str:
    """"2 jobs ahead of yours (5 waiting), starts in about 6 min" from (ahead, waiting[, eta])."""
    from rai.units import plural

    if position is None:
        return "not known"
    ahead, waiting, *eta = position
    when = f", starts in {eta[0]}" if eta and eta[0] != "under a minute" else (", starts within a minute"
                                                                                if eta else "")
    if ahead == 0:
        return "yours is next" + when
    return f"{plural(ahead, 'job')} ahead of yours ({waiting} waiting){when}"


def _follow_and_report(ctx_client: Client, job_id: str, output: Path | None, queue: str | None = None) -> int:
    from rai.domain.models import JobState

    def on_wait(position: tuple[int, int]) -> None:  # the server says it when the place changes
        err().print(f"[dim]» waiting{f' on {queue}' if queue else ''}: {place_text(position)}[/dim]")

    def on_gap(text: str) -> None:
        err().print(f"[yellow]» {text}[/]")

    try:
        end = print_entries(ctx_client.follow(job_id, on_wait=on_wait, on_gap=on_gap))
    except KeyboardInterrupt:
        err().print(f"\nstopped following; the job goes on. Follow it again with `rai logs {job_id} -f`")
        return 130
    if end is None:
        err().print(f"the log of {job_id} ended without a result; check `rai status {job_id}`")
        return 1
    print_summary(job_id, end)
    if output is not None and end.output_key:
        n = ctx_client.download_outputs(job_id, output)
        err().print(f"  {n} files of /build written to {output}")
    return 0 if end.state == JobState.succeeded else 1


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="RAI_CONFIG", help="config file (default ~/.rai_config.yml)")
@click.option("--profile", envvar="RAI_PROFILE", help="your credentials (default ~/.rai_profile)")
@click.option("-p", "--path", "project", type=click.Path(path_type=Path), help="submit this project (as `submit -p`)")
@click.version_option(__version__, "--version", prog_name="rai")
@click.pass_context
def cli(ctx: click.Context, config_path, profile, project) -> int | None:
    """Run your project on a rai GPU node and watch its output live."""
    ctx.obj = Context(config_path, profile)
    if ctx.invoked_subcommand is None:
        if project is None:
            click.echo(ctx.get_help())
            return 0
        return ctx.invoke(submit, project=project)
    return None


@cli.command()
@click.option("-p", "--path", "project", type=click.Path(path_type=Path), default=".", show_default=True,
              help="the project folder (holds rai_build.yml)")
@click.option("--queue", help="queue to submit to (default rai_<architecture of the spec>)")
@click.option("--no-follow", is_flag=True, help="enqueue, print the job id alone and return")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="download /build into this folder at the end")
@click.option("--submit", "submission",
              help="a ranked submission of this kind (m1, final, or project/kind): the project's own spec runs")
@click.pass_obj
def submit(obj: Context, project: Path, queue, no_follow, output, submission) -> int:
    """Upload PROJECT, run it, and print its output live."""
    from rai.client.packing import PackStream
    from rai.client.profile import profile_path, read_profile

    # packing starts first, in a thread of its own; then the profile and the server's address, read without the
    # client's models, and the submit itself (rai/client/submitting.py). httpx, rich and the rest of the client
    # load after the job is queued, for following it.
    packing = PackStream(project, exclude=(profile_path(obj.profile_arg),))
    try:
        from rai.client.settings import server_settings
        from rai.client.submitting import Credentials, submit_project

        who = Credentials.of(read_profile(obj.profile_arg))
        server = server_settings(obj.config_path)
    except BaseException:
        packing.close()
        raise
    with UploadBar(enabled=not no_follow and err().is_terminal) as bar:
        sub = submit_project(
            server,
            who,
            project,
            queue=queue,
            submission=submission,
            packing=packing,
            on_progress=(lambda _m: None) if no_follow else (lambda m: err().print(f"[dim]» {m}[/dim]")),
            upload_progress=bar.advance if bar.enabled else None,
        )
    if no_follow:
        click.echo(sub.job_id)
    else:
        err().print(f"job [bold]{sub.job_id}[/] queued on {sub.queue}")
    if sub.notice:  # click's colours, not rich: `--no-follow` then loads no rich at all
        click.secho(f"» {sub.notice}", fg="yellow", err=True)
    if no_follow:
        return 0
    return _follow_and_report(obj.client(), sub.job_id, output, sub.queue)


@cli.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing until the job ends")
@click.pass_obj
def logs(obj: Context, job_id: str, follow: bool) -> int:
    """Print JOB's whole log from its first line (and, with -f, live until it ends)."""
    client = obj.client()
    if follow:
        return _follow_and_report(client, job_id, None)
    end = print_entries(client.follow(job_id, live=False))
    if end is not None:
        print_summary(job_id, end)
    return 0


def _record_table(record: JobRecord) -> str:
    from rai.units import format_duration

    rows = [
        ("job", record.job_id),
        ("state", record.state.value),
        ("user", record.username + (f" (team {record.team})" if record.team else "")),
        ("queue", record.queue),
        ("node", record.node or "-"),
        ("submitted", record.submitted_at.isoformat() if record.submitted_at else "-"),
        ("started", record.started_at.isoformat() if record.started_at else "-"),
        ("finished", record.finished_at.isoformat() if record.finished_at else "-"),
        ("exit code", "-" if record.exit_code is None else str(record.exit_code)),
        ("duration", format_duration(record.duration)),
        ("outputs", record.output_key or "-"),
        ("message", record.message or "-"),
    ]
    return "\n".join(f"{k:>10}  {v}" for k, v in rows)


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="print the record as JSON")
@click.pass_obj
def status(obj: Context, job_id: str, as_json: bool) -> int:
    """Show JOB's state, node, exit code and duration."""
    import json

    from rai.domain.models import JobState

    record, position = obj.client().status(job_id)
    if as_json:
        data = record.model_dump(mode="json")
        if position is not None:
            data["waiting"] = {"ahead": position[0], "on_queue": position[1]}
            if len(position) > 2:
                data["waiting"]["eta"] = position[2]
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(_record_table(record))
        if record.state == JobState.queued:
            click.echo(f"{'place':>10}  {place_text(position)}")
    return 0


@cli.command()
@click.argument("job_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="folder to unpack /build into")
@click.pass_obj
def get(obj: Context, job_id: str, output: Path) -> int:
    """Download JOB's /build folder into OUTPUT."""
    n = obj.client().download_outputs(job_id, output)
    err().print(f"{n} files of /build written to {output}")
    return 0


@cli.command()
@click.argument("job_id")
@click.pass_obj
def cancel(obj: Context, job_id: str) -> int:
    """Cancel JOB, waiting or running."""
    record = obj.client().cancel(job_id)
    err().print(f"cancel requested for {job_id} ({record.state.value}); its log will end with the result")
    return 0


@cli.command()
@click.pass_obj
def whoami(obj: Context) -> int:
    """Show who your profile says you are."""
    from rai.client.profile import read_profile  # the file's fields as load_profile checks them, without pydantic

    p = read_profile(obj.profile_arg)
    click.echo(f"{p['username']} <{p['email']}> team={p['team'] or '-'} role={p['role']}")
    return 0


@cli.command()
def version() -> int:
    """Print the client's version."""
    click.echo(f"rai {__version__}")
    return 0


for _command in RANKING_COMMANDS:  # ranking, history, submitted
    cli.add_command(_command)


def main() -> None:
    # Loading the client makes ~60,000 objects that all outlive it; the collections they would set off on the
    # way scan them again and again (0.05-0.1 s of a command's CPU): off until started(), or the command's end.
    gc.disable()
    try:
        run_cli(cli)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            leave(done.code or 0)
        raise
    leave(0)


def leave(code: int) -> None:
    """End the process without tearing the interpreter down. The command is over: every file it wrote was
    closed by its `with`, no thread of it must finish (the packer and the whoami asker are daemons), and all
    that is left is freeing each module's objects one by one, about 0.02 s of every command (a twentieth of
    a submit: bench/submit.py). stdout and stderr are flushed first; a reader that went away is no error."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
