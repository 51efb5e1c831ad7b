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
from typing import TYPE_CHECKING, Any

from rai.errors import UserError

if TYPE_CHECKING:
    from rai.domain.models import Account

DEFAULT_PROFILE = "~/.rai_profile"

# The Profile model is built on its first use (`from rai.client.profile import Profile`, load_profile), so that `rai`
# starts without loading pydantic; `rai whoami` checks a profile against _FIELDS instead (read_profile).
_REQUIRED = object()
_FIELDS: dict[str, object] = {"username": _REQUIRED, "email": "", "firstname": "", "lastname": "", "affiliation": "",
                              "team": None, "role": "student", "access_key": _REQUIRED, "secret_key": _REQUIRED}


def _model() -> Any:  # the Profile model class, made on first use
    if "Profile" in globals():
        return globals()["Profile"]
    from pydantic import BaseModel, ConfigDict

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
            import yaml

            data = self.model_dump()
            data["team"] = {"name": self.team} if self.team else None
            return yaml.safe_dump({"profile": data}, sort_keys=False)

    Profile.__qualname__ = "Profile"  # pickled and printed as rai.client.profile.Profile
    globals()["Profile"] = Profile
    return Profile


def __getattr__(name: str) -> Any:
    if name == "Profile":
        return _model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    Profile = Any  # for the annotations below; at run time _model() makes it


def profile_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("RAI_PROFILE") or DEFAULT_PROFILE).expanduser()


def _read(path: str | os.PathLike | None) -> tuple[Path, dict]:
    """The profile file's `profile:` mapping, team flattened to its name."""
    import yaml

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
    return p, body


def _validate(p: Path, body: dict) -> Profile:
    from pydantic import ValidationError

    try:
        return _model().model_validate(body)
    except ValidationError as e:
        missing = ", ".join(".".join(map(str, err["loc"])) for err in e.errors())
        raise UserError(f"profile {p} is incomplete or invalid: {missing}") from None


def load_profile(path: str | os.PathLike | None = None) -> Profile:
    return _validate(*_read(path))


def read_profile(path: str | os.PathLike | None = None) -> dict[str, str | None]:
    """The profile's fields, accepted and refused exactly as load_profile does, as a dict and without pydantic
    when every field is plainly right (`rai whoami`); anything else goes to the model for its verdict and words."""
    p, body = _read(path)
    fields = {name: body.get(name, default) for name, default in _FIELDS.items()}
    if all(type(v) is str or (name == "team" and v is None) for name, v in fields.items()):
        return fields
    return _validate(p, body).model_dump()


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
