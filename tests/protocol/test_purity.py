"""The protocol core imports nothing from django, asyncio or websockets."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import relaybridge.protocol

FORBIDDEN = {"django", "asyncio", "websockets", "channels", "celery", "redis"}
PACKAGE_DIR = Path(relaybridge.protocol.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            roots.add("__import__")  # dynamic imports would dodge this scan
    return roots


def test_package_files_exist() -> None:
    names = {path.name for path in PACKAGE_DIR.glob("*.py")}
    assert {"frames.py", "codec.py", "session.py", "policy.py", "backoff.py"} <= names


def test_no_forbidden_import_statements() -> None:
    offenders = {
        path.name: sorted(_imported_roots(path) & (FORBIDDEN | {"__import__", "importlib"}))
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }
    assert {name: roots for name, roots in offenders.items() if roots} == {}


def test_importing_the_package_loads_none_of_them() -> None:
    # A fresh interpreter: this test process has django loaded already.
    code = (
        "import json, sys\n"
        "import relaybridge.protocol\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACKAGE_DIR.parent.parent,
        env={"PATH": "", "PYTHONPATH": str(PACKAGE_DIR.parent.parent)},
    )
    loaded = set(json.loads(result.stdout))
    assert "relaybridge" in loaded
    assert loaded & FORBIDDEN == set()
