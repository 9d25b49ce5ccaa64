"""requirements.lock pins every dependency pyproject.toml declares, and the image uses the locked Ray."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    return {normalized(name): version for name, version in pins}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return {normalized(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in requirements}


def test_every_declared_dependency_is_pinned_by_the_lock():
    missing = declared() - set(locked())
    assert not missing, f"not in requirements.lock: {sorted(missing)}; run `make lock`"


def test_the_image_starts_from_the_locked_ray():
    [tag] = re.findall(r"^FROM\s+rayproject/ray:(\S+)-py311", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert tag == locked()["ray"]
