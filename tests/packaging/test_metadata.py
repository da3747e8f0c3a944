"""The package's own paperwork: one version, the licence it declares, typing, changelog, hooks."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import relaybridge

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once_and_read_by_the_metadata() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "relaybridge.__version__"}
    assert importlib.metadata.version("relaybridge") == relaybridge.__version__


def test_the_licence_file_matches_the_declared_licence() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
    assert importlib.metadata.metadata("relaybridge")["License-Expression"] == "MIT"


def test_the_package_says_it_is_typed() -> None:
    assert (ROOT / "relaybridge" / "py.typed").is_file()
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["relaybridge"]
    assert "py.typed" in package_data


def test_the_changelog_has_an_unreleased_section_first() -> None:
    headings = [
        line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")
    ]
    assert headings[0] == "## Unreleased"
    assert f"## {relaybridge.__version__}" in headings


def test_pre_commit_runs_the_linters_ci_runs() -> None:
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    for hook in ("id: ruff-check", "id: ruff-format", "id: eslint"):
        assert hook in config
    makefile = (ROOT / "Makefile").read_text()
    assert "npx --no-install eslint ." in makefile
    assert "lint: $(STAMP) lint-js" in makefile
