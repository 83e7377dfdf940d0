"""Semantic versions (semver.org 2.0): parsing, precedence, and a sortable text key.

The sort key lets PostgreSQL order versions by precedence with a plain `ORDER BY sort_key`
(column collated "C"): 1.10.0 > 1.9.0, 1.3.0 > 1.3.0-rc.1, rc.10 > rc.9, build metadata ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libs.common.errors import InvalidInput

_SEMVER = re.compile(
    r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-((?:0|[1-9]\d{0,8}|\d*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9]\d{0,8}|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
MAX_VERSION_CHARS = 64
_NUMBER_WIDTH = 10


@dataclass(frozen=True, order=False)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    text: str = ""

    @property
    def sort_key(self) -> str:
        """Text that sorts (byte-wise) in precedence order."""
        core = ".".join(f"{n:0{_NUMBER_WIDTH}d}" for n in (self.major, self.minor, self.patch))
        if not self.prerelease:
            return core + "~"  # "~" sorts after "-": a release outranks its pre-releases
        # "!" sorts below every identifier character, so a shorter list ranks lower.
        return core + "-" + "!".join(_identifier_key(i) for i in self.prerelease)

    def __lt__(self, other: Version) -> bool:
        return self.sort_key < other.sort_key

    def __gt__(self, other: Version) -> bool:
        return self.sort_key > other.sort_key


def _identifier_key(identifier: str) -> str:
    # Numeric identifiers rank below alphanumeric ones and compare as numbers.
    if identifier.isdigit():
        return "0" + identifier.zfill(_NUMBER_WIDTH)
    return "1" + identifier


def parse_version(text: str) -> Version:
    """A semantic version, or InvalidInput saying why not."""
    if len(text) > MAX_VERSION_CHARS:
        raise InvalidInput(f"version is longer than {MAX_VERSION_CHARS} characters")
    match = _SEMVER.match(text)
    if not match:
        raise InvalidInput(f"version {text!r} is not a semantic version like 1.2.0 or 1.3.0-rc.1")
    pre = tuple(match.group(4).split(".")) if match.group(4) else ()
    return Version(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre, text)


def try_parse(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return parse_version(text.removeprefix("v"))
    except InvalidInput:
        return None


def is_newer(candidate: str, current: str | None) -> bool:
    """Whether `candidate` outranks what a device runs; an unreadable current version is old."""
    new = parse_version(candidate)
    old = try_parse(current)
    return old is None or new > old
