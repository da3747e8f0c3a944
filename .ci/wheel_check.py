"""Build relaybridge's wheel and prove it works installed in a project we did not write.

Standard library only (``make wheel-check``; CI runs it from .ci/run):

1. Builds the wheel from a copy of the checkout's files (tracked and new, not ignored),
   so nothing left in build/ by an earlier build can slip in.
2. Checks what the wheel holds: every template and static file, ``py.typed``, the
   migrations, the licence and the metadata (version, licence, classifiers, extras),
   and nothing of the checkout's tests, example project or benchmarks.
3. Installs it, with the ``daphne`` extra, into a new virtual environment.
4. Runs tests/host_project (copied away from the checkout) with that environment's
   Python: ``manage.py check``, the templates, Daphne's ``runserver`` serving
   ``stream.js``, and ``relay_devserver`` answering a mention of @athena.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.packaging.host_exercise import ExerciseFailed, check, exercise  # noqa: E402


def log(message: str) -> None:
    print(f"--- {message}", flush=True)


def run(*cmd: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in cmd], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise ExerciseFailed(
            f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def source_version() -> str:
    text = (ROOT / "relaybridge" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    check(match, "relaybridge/__init__.py has no __version__")
    assert match is not None
    return match.group(1)


def copy_sources(target: Path) -> None:
    listed = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def check_wheel(wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"relaybridge-{version}.dist-info"
        metadata = HeaderParser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    package_files = {
        path.relative_to(ROOT).as_posix()
        for folder in ("templates", "static")
        for path in (ROOT / "relaybridge" / folder).rglob("*")
        if path.is_file()
    }
    wanted = package_files | {
        "relaybridge/py.typed",
        "relaybridge/migrations/0001_initial.py",
        "relaybridge/management/commands/relay_devserver.py",
        f"{dist_info}/licenses/LICENSE",
    }
    check(not wanted - names, f"the wheel lacks {sorted(wanted - names)}")
    check("relaybridge/static/relaybridge/stream.js" in names, "no stream.js in the wheel")
    strays = {name.split("/")[0] for name in names} - {"relaybridge", dist_info}
    check(not strays, f"the wheel holds more than the package: {sorted(strays)}")
    check(metadata["Version"] == version, f"metadata version {metadata['Version']} != {version}")
    check(metadata["License-Expression"] == "MIT", "the metadata does not say MIT")
    classifiers = metadata.get_all("Classifier") or []
    check("Typing :: Typed" in classifiers, "no Typing :: Typed classifier")
    requires = metadata.get_all("Requires-Dist") or []
    for optional in ("daphne", "dj-database-url"):
        unconditional = [req for req in requires if req.startswith(optional) and ";" not in req]
        check(not unconditional, f"{optional} is required by every install: {unconditional}")
    check(
        any(req.startswith("daphne") and 'extra == "daphne"' in req for req in requires),
        f"no daphne extra in {requires}",
    )
    log(f"{wheel.name}: {len(names)} files, templates, static files, py.typed and LICENSE in")


def main() -> int:
    version = source_version()
    with tempfile.TemporaryDirectory(prefix="relaybridge-wheel-") as tmp:
        work = Path(tmp)
        try:
            log("a new virtual environment")
            run(sys.executable, "-m", "venv", work / "venv")
            python = work / "venv" / "bin" / "python"
            run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")

            log("building the wheel from a copy of the checkout")
            copy_sources(work / "src")
            run(
                python,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--wheel-dir",
                work / "dist",
                work / "src",
            )
            (wheel,) = (work / "dist").glob("relaybridge-*.whl")
            check_wheel(wheel, version)

            log("installing it with the daphne extra")
            run(
                python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "-c",
                ROOT / "constraints.txt",
                f"relaybridge[daphne] @ {wheel.as_uri()}",
            )

            log("the host project (tests/host_project), away from the checkout")
            host = work / "host_project"
            shutil.copytree(
                ROOT / "tests" / "host_project",
                host,
                ignore=shutil.ignore_patterns("*.sqlite3", "__pycache__"),
            )
            found = exercise(str(python), host)
            site = work / "venv" / "lib"
            check(
                Path(str(found["package"])).is_relative_to(site),
                f"relaybridge came from {found['package']}, not the new environment",
            )
            check(found["version"] == version, f"installed version {found['version']}")
        except ExerciseFailed as exc:
            print(f"wheel check FAILED: {exc}", file=sys.stderr)
            return 1
    log("wheel check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
