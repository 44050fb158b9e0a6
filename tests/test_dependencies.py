"""The package's declared dependencies match what it imports: every runtime dependency is
imported by the package, and each extra's is imported only where that extra is needed."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aiovideoextend"
#: distribution name -> the top-level module it installs
MODULES = {"taskiq-redis": "taskiq_redis"}


def declared(group: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    names = {re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower() for spec in specs}
    return {MODULES.get(name, name.replace("-", "_")) for name in names}


def imported(files: list[Path]) -> set[str]:
    found: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_imported_by_the_package():
    assert declared() <= imported(sorted(PACKAGE.rglob("*.py")))


def test_the_core_imports_no_extra():
    """The extras' modules are imported only by the parts that need them: rich by the command
    line, redis by the Redis backends, taskiq by the task queue."""
    extras = declared("cli") | declared("redis") | declared("queue")
    core = [
        path
        for path in PACKAGE.rglob("*.py")
        if not {"cli", "_redis", "queue", "testing"} & set(path.relative_to(PACKAGE).parts)
    ]
    assert imported(core) & extras == set()
