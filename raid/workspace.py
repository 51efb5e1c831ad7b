"""A job's scratch folder on its node: the project comes in (fetched, checked, unpacked under caps), /build goes
out (packed and stored). Each node has its own folder under raid.work_dir and cleans only that."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from rai.backends.store import ObjectStore
from rai.config import Config, DockerConfig
from rai.domain.archive import file_sha256, tar_to_zstd, unpack_checked
from rai.domain.archive_check import ArchiveLimits, ArchiveRefused, upload_refusal
from rai.domain.models import JobRequest, JobState
from rai.domain.object_keys import output_key
from rai.errors import NotFound
from raid.outcome import Ended, ended, refused

log = logging.getLogger("raid.job")


def node_work_dir(cfg: Config, node: str) -> Path:
    """This node's own scratch folder under raid.work_dir (nodes may share work_dir; each cleans only its own)."""
    return cfg.raid.work_path() / node


def job_folder(cfg: Config, node: str, job_id: str) -> tempfile.TemporaryDirectory[str]:
    """`with job_folder(...) as path:` the job's own scratch folder, removed with what is in it at the end."""
    folder = node_work_dir(cfg, node)
    folder.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=f"rai-{job_id}-", dir=folder)


def remove_left_work(cfg: Config, node: str) -> int:
    """Remove the work folders a killed run of this node left (kill -9 mid-job); returns how many."""
    folder = node_work_dir(cfg, node)
    removed = 0
    for left in folder.glob("rai-*") if folder.is_dir() else []:
        shutil.rmtree(left, ignore_errors=True)
        removed += 1
    return removed


def fetch_project(store: ObjectStore, req: JobRequest, folder: Path, docker: DockerConfig) -> Path | Ended:
    """The project as a plain tar in `folder`, once its upload matches the signed digest and unpacks within the
    caps; else the job's end (missing, not the one signed, over a cap)."""
    upload = folder / "upload.tar.zst"
    try:
        store.get_file(req.upload_key, upload)
    except NotFound:
        return ended(JobState.error, "the project upload is missing from the store; submit again")
    if file_sha256(upload) != req.upload_sha256:
        return refused("refused: the uploaded archive does not match the signed request")
    source_tar = folder / "src.tar"
    try:  # caps checked as it decompresses: a few KiB of zstd can unpack to terabytes
        unpack_checked(upload, source_tar, ArchiveLimits(docker.upload_limit, docker.max_files, docker.max_depth))
    except ArchiveRefused as e:
        log.info("job %s: upload refused: %s %s", req.job_id, e.reason, e.detail)
        source_tar.unlink(missing_ok=True)  # the folder goes too; no need to wait for it
        return refused(upload_refusal(e))
    return source_tar


def store_outputs(store: ObjectStore, req: JobRequest, build_tar: Path) -> tuple[str, str] | None:
    """Pack /build (as the executor copied it) and store it under the user's outputs: (key, link); None when
    the job left no /build."""
    if not build_tar.exists() or build_tar.stat().st_size == 0:
        return None
    key = output_key(req.username, req.job_id)
    packed = build_tar.with_name("build.tar.zst")
    tar_to_zstd(build_tar, packed)
    store.put_file(key, packed)
    return key, store.url(key)
