"""The runtime part of requirements.lock: `python deploy/runtime_requirements.py requirements.lock`.

The lock pins the project's dependencies and its dev group (pytest, mypy, ruff, ...) together,
with hashes. The image needs only the first, at exactly the tested versions and hashes, so
this keeps a package when the project needs it at run time directly (`# via acuvim-console
(pyproject.toml)`) or through another kept package, and drops what only the dev group pulls in.
Printed to stdout, ready for `pip install --require-hashes --no-deps -r`.
Uses only the standard library: it runs in the image's build stage before anything is installed.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

PROJECT_RUNTIME = "acuvim-console (pyproject.toml)"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==")


def normalize(name: str) -> str:
    """PEP 503 name: what `# via` lines and pins agree on."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Pin:
    name: str
    lines: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)


def parse_lock(text: str) -> list[Pin]:
    pins: list[Pin] = []
    in_via = False
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            pins.append(Pin(normalize(match.group(1)), [line]))
            in_via = False
            continue
        if not pins or not line.startswith(" "):
            continue  # the header comment
        pin = pins[-1]
        pin.lines.append(line)
        comment = line.strip()
        if comment.startswith("# via"):
            parent = comment.removeprefix("# via").strip()
            in_via = not parent  # a bare `# via` lists its parents on the next lines
            if parent:
                pin.parents.append(parent)
        elif in_via and comment.startswith("#   "):
            pin.parents.append(comment.removeprefix("#").strip())
    return pins


def runtime_pins(pins: list[Pin]) -> list[Pin]:
    """The pins the project needs at run time: a fixpoint over the `# via` graph."""
    needed: set[str] = set()
    changed = True
    while changed:
        changed = False
        for pin in pins:
            if pin.name in needed:
                continue
            if any(p == PROJECT_RUNTIME or normalize(p.split("[")[0]) in needed
                   for p in pin.parents):
                needed.add(pin.name)
                changed = True
    return [pin for pin in pins if pin.name in needed]


def render(pins: list[Pin]) -> str:
    head = "# Runtime part of requirements.lock (deploy/runtime_requirements.py); do not edit.\n"
    return head + "".join("\n".join(pin.lines) + "\n" for pin in pins)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python deploy/runtime_requirements.py requirements.lock", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as lock:
        pins = runtime_pins(parse_lock(lock.read()))
    if not pins:
        print(f"no runtime dependency found in {argv[0]}", file=sys.stderr)
        return 1
    sys.stdout.write(render(pins))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
