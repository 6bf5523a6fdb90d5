"""Print the pinned requirements of kubetune[EXTRA], one per line, sorted.

Resolves the self-references between extras (dev includes trainer and server) so the cached
virtualenv is keyed by exactly what it installs.
"""

import re
import sys
import tomllib


def requirements(pyproject: dict, extra: str) -> set[str]:
    project = pyproject["project"]
    name = project["name"]
    optional = project.get("optional-dependencies", {})
    wanted, seen, found = [extra], set(), set(project.get("dependencies", []))
    while wanted:
        current = wanted.pop()
        if current in seen:
            continue
        seen.add(current)
        for req in optional.get(current, []):
            self_ref = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", req)
            if self_ref:
                wanted.extend(e.strip() for e in self_ref.group(1).split(","))
            else:
                found.add(req)
    return found


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        print("\n".join(sorted(requirements(tomllib.load(f), sys.argv[2]))))
