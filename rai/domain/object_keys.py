"""Where a job's archives live in the object store: the upload under its user's prefix, the outputs beside it.
Named here, once, for the client, rai-server, raid and the store backends."""


def upload_key(username: str, job_id: str) -> str:
    return f"uploads/{username}/{job_id}.tar.zst"


def output_key(username: str, job_id: str) -> str:
    return f"outputs/{username}/{job_id}.tar.zst"
