"""Running embedded programs without root: PostgreSQL refuses to run as root at all.

As root, a program runs as an unprivileged account (`acuvim` if it exists, else `nobody`)
owning its data folder. When that account cannot reach the folder (a checkout under /root,
whose parents are private), PostgreSQL runs in a user namespace instead, where it is `nobody`
to itself while its files stay those of the checkout's owner.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from services.supervisor.processes import run_once

log = logging.getLogger(__name__)

_UNPRIVILEGED_USERS = ("acuvim", "nobody")
_SBIN_DIRS = ("/usr/sbin", "/sbin")


class PrivilegeError(RuntimeError):
    """No way to run a program without root here (the message says what to do)."""


@dataclass(frozen=True)
class RunAs:
    """An unprivileged account to drop to when the supervisor runs as root."""

    name: str
    uid: int
    gid: int

    def prefix(self) -> list[str]:
        setpriv = shutil.which("setpriv")
        if setpriv:  # exec()s the program: signals reach it directly
            return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                    "--"]
        runuser = shutil.which("runuser", path=os.pathsep.join(_SBIN_DIRS))
        if runuser is None:
            raise PrivilegeError("running as root needs setpriv or runuser to drop privileges")
        return [runuser, "-u", self.name, "--"]


def unprivileged() -> RunAs | None:
    """The account to run as, or None when the supervisor is not root (it runs as itself)."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED_USERS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise PrivilegeError("running as root, and no unprivileged user (acuvim, nobody) exists")


def owned_dir(folder: Path, run_as: RunAs | None) -> None:
    """Create `folder`, private to `run_as` (or to us)."""
    folder.mkdir(parents=True, exist_ok=True)
    uid, gid = (run_as.uid, run_as.gid) if run_as else (os.geteuid(), os.getegid())
    if folder.stat().st_uid != uid:
        os.chown(folder, uid, gid)
    folder.chmod(0o700)


async def reaches(run_as: RunAs, folder: Path, program: Path | None = None) -> bool:
    """Can `run_as` write in `folder` (and run `program`)? Parents may be private (/root)."""
    checks = [f"test -w '{folder}'"] + ([f"test -x '{program}'"] if program else [])
    code, _ = await run_once([*run_as.prefix(), "sh", "-c", " && ".join(checks)],
                             timeout_s=10)
    return code == 0


async def user_namespace_prefix() -> list[str] | None:
    """`unshare --user` when this kernel lets us make a user namespace, else None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    code, _ = await run_once([unshare, "--user", "true"], timeout_s=10)
    return [unshare, "--user"] if code == 0 else None


def _made_by_root(cluster: Path) -> bool:
    """A cluster made earlier in a user namespace (its files belong to root)."""
    return (cluster / "PG_VERSION").exists() and cluster.stat().st_uid == 0


async def postgres_prefix(cluster: Path, postgres: Path) -> list[str]:
    """The command prefix that runs PostgreSQL unprivileged, with `cluster` ready for it."""
    run_as = unprivileged()
    if run_as is None:
        owned_dir(cluster, None)
        return []
    made_in_namespace = _made_by_root(cluster)
    if not made_in_namespace:
        owned_dir(cluster, run_as)
        if await reaches(run_as, cluster, postgres):
            return run_as.prefix()
    namespace = await user_namespace_prefix()
    if namespace is None:
        raise PrivilegeError(
            f"user {run_as.name} cannot reach {cluster} or {postgres} (a parent folder is not "
            "searchable by others); set ACUVIM_DATA_DIR to a folder it can reach")
    if not made_in_namespace:
        owned_dir(cluster, None)
        log.info("PostgreSQL runs in a user namespace: user %s cannot reach %s",
                 run_as.name, cluster)
    return namespace


async def broker_account(folder: Path) -> tuple[RunAs | None, bool]:
    """(account for a broker that drops privileges itself, may it keep files in `folder`?)."""
    run_as = unprivileged()
    owned_dir(folder, run_as)
    if run_as is None:
        return None, True
    return run_as, await reaches(run_as, folder)
