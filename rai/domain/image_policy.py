"""Which images a role may run: `docker.allowed_images`, or the role's own `allowed_images` (glob patterns).

Checked by rai-server at submit and again by raid before anything is pulled or built.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from rai.config import Config


def allowed_patterns(config: Config, role: str) -> list[str]:
    """The role's patterns, else the server's; ["*"] allows any image."""
    limits = config.roles.get(role)
    if limits is not None and limits.allowed_images is not None:
        return limits.allowed_images
    return config.docker.allowed_images


def _names(image: str) -> list[str]:
    """The image as written, and with the :latest tag a bare name means."""
    last = image.rsplit("/", 1)[-1]
    return [image] if (":" in last or "@" in image) else [image, f"{image}:latest"]


def image_allowed(image: str, patterns: list[str]) -> bool:
    return any(fnmatchcase(name, p) for name in _names(image) for p in patterns)


def image_refusal(image: str, config: Config, role: str, what: str = "rai.image") -> str | None:
    """Why `image` may not run for `role` (naming the allowed patterns), or None when it may."""
    patterns = allowed_patterns(config, role)
    if image_allowed(image, patterns):
        return None
    shown = ", ".join(patterns) if patterns else "(none)"
    return (f"the image {image} ({what}) is not allowed for role {role}; the allowed images are: {shown}; "
            "change it in rai_build.yml")
