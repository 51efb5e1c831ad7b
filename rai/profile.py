"""The user's credentials file (`--profile`, `RAI_PROFILE`, `~/.rai_profile`), in the original RAI's YAML form.

```yaml
profile:
  username: ada
  email: ada@example.edu
  team: {name: t1}
  role: student
  access_key: ...
  secret_key: ...
```
Written with mode 0600; never uploaded with a project.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from rai.errors import UserError
from rai.models import Account

DEFAULT_PROFILE = "~/.rai_profile"


class Profile(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str
    email: str = ""
    firstname: str = ""
    lastname: str = ""
    affiliation: str = ""
    team: str | None = None
    role: str = "student"
    access_key: str
    secret_key: str

    @classmethod
    def from_account(cls, account: Account) -> Profile:
        return cls(**account.model_dump(include=set(cls.model_fields)))

    def to_yaml(self) -> str:
        data = self.model_dump()
        data["team"] = {"name": self.team} if self.team else None
        return yaml.safe_dump({"profile": data}, sort_keys=False)


def profile_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("RAI_PROFILE") or DEFAULT_PROFILE).expanduser()


def load_profile(path: str | os.PathLike | None = None) -> Profile:
    p = profile_path(path)
    if not p.is_file():
        raise UserError(
            f"no profile at {p}",
            hint="ask your course staff for your .rai_profile, or pass --profile / set RAI_PROFILE",
        )
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"profile {p} is not valid YAML: {e}") from None
    body = raw.get("profile", raw) if isinstance(raw, dict) else None
    if not isinstance(body, dict):
        raise UserError(f"profile {p} must hold a `profile:` mapping with username, access_key and secret_key")
    team = body.get("team")
    if isinstance(team, dict):
        body = {**body, "team": team.get("name")}
    try:
        return Profile.model_validate(body)
    except ValidationError as e:
        missing = ", ".join(".".join(map(str, err["loc"])) for err in e.errors())
        raise UserError(f"profile {p} is incomplete or invalid: {missing}") from None


def write_profile(profile: Profile, path: str | os.PathLike) -> Path:
    """Write the profile readable by its owner only (0600), atomically."""
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(profile.to_yaml())
    os.chmod(tmp, 0o600)
    os.replace(tmp, p)
    return p
