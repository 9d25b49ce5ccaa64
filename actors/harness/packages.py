"""Make sure the Debian packages the servers need are there; install them as root, else say how."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from actors.harness.errors import HarnessError

_APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Another apt run (e.g. provisioning of the machine) may hold the dpkg lock: wait for it instead of failing.
_APT_OPTS = ["-y", "-q", "-o", "DPkg::Lock::Timeout=600"]
_apt_lock = threading.Lock()  # PostgreSQL and MariaDB are prepared in parallel threads.


@dataclass(frozen=True)
class Requirement:
    """Something a server needs (`what`), how to tell it is there, and the Debian package providing it."""

    what: str
    package: str
    present: Callable[[], bool]


def install_command(packages: Iterable[str]) -> str:
    return "apt-get install -y " + " ".join(sorted(set(packages)))


def ensure_installed(requirements: Iterable[Requirement], *, install: bool | None = None) -> None:
    """Install the missing packages with apt-get, or raise saying what is missing and how to install it.

    `install=None` means: install when running as root on a machine with apt-get.
    """
    missing = [r for r in requirements if not r.present()]
    if not missing:
        return
    if install is None:
        install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    if not install:
        raise HarnessError(_missing_message(missing, "cannot install them here (not root or no apt-get)"))
    with _apt_lock:
        still = [r for r in missing if not r.present()]
        if still:
            _apt_install([r.package for r in still])
    still = [r for r in missing if not r.present()]
    if still:
        raise HarnessError(_missing_message(still, "still missing after apt-get install"))


def _missing_message(missing: list[Requirement], reason: str) -> str:
    lines = [f"  - {r.what} (Debian package {r.package})" for r in missing]
    sudo = "" if os.geteuid() == 0 else "sudo "
    return (
        f"missing for the local test servers ({reason}):\n"
        + "\n".join(lines)
        + f"\ninstall with: {sudo}{install_command(r.package for r in missing)}"
    )


def _apt_install(packages: list[str]) -> None:
    """apt-get install; on failure refresh the package lists once (fresh images have none) and retry."""
    cmd = ["apt-get", *_APT_OPTS, "install", "--no-install-recommends", *packages]
    env = {**os.environ, **_APT_ENV}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if first.returncode == 0:
        return
    update = subprocess.run(["apt-get", *_APT_OPTS, "update"], env=env, capture_output=True, text=True, check=False)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if second.returncode != 0:
        tail = "\n".join((update.stdout + update.stderr + second.stdout + second.stderr).splitlines()[-20:])
        raise HarnessError(f"`{' '.join(cmd)}` failed (exit {second.returncode}):\n{tail}")
