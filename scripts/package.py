#!/usr/bin/env python3
"""Build the FC code packages: ``build/<function>/`` (for ``s deploy``) and ``dist/<function>.zip`` (console).

Each package has ``index.py`` at its root, ``shared/`` beside it, and the third-party packages the
python3.10 runtime lacks, installed for Linux x86_64 / CPython 3.10 from manylinux wheels. FC's
code directory is read-only, so Python cannot cache bytecode there: the package ships it,
compiled by a CPython 3.10 with hash-based pycs that stay valid whatever mtimes unzipping gives.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("dingtalk_conversation", "dingtalk_chatgpt_reply")
RUNTIME_PROVIDED = {"requests", "aliyun-fc2", "oss2"}
TARGET_PYTHON = "3.10"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux1_x86_64", "linux_x86_64")
PRUNE_DIRS = {"__pycache__", "tests", "test", "testing"}
# alibabacloud-dingtalk ships a module for each of DingTalk's ~120 APIs (about 90 MB); the bundle uses two.
# Pure-Python dependencies published only as source archives: built into universal wheels first, since a
# cross-platform install (--platform) accepts nothing but wheels.
SOURCE_ONLY = ("alibabacloud-endpoint-util", "alibabacloud-gateway-dingtalk")
SDK_MODULES_USED = {"alibabacloud_dingtalk": {"__init__.py", "card_1_0", "oauth2_1_0"}}
FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
# shared/ is arranged by function: each package carries the common code and its own part only.
SHARED_PARTS = {"dingtalk_conversation": ("common", "receiver"), "dingtalk_chatgpt_reply": ("common", "reply")}


def find_python310() -> Optional[str]:
    """A working CPython 3.10 (PATH, pyenv, /usr/bin), or None."""
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    candidates = [shutil.which("python3.10") or "", *pyenv]
    candidates.append("/usr/bin/python3.10")
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                                 capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.stdout.strip() == "True":
            return candidate
    return None


def bundled_requirements(function: str) -> List[str]:
    lines = (ROOT / function / "requirements.txt").read_text().splitlines()
    wanted = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        name = line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
        if line and name not in RUNTIME_PROVIDED:
            wanted.append(line)
    return wanted


def install_dependencies(requirements: List[str], target: Path, python310: Optional[str]) -> None:
    """Resolve with CPython 3.10's own pip when there is one: pip evaluates dependency markers such as
    ``python_version < "3.11"`` (anyio → exceptiongroup) against the interpreter that runs it."""
    if not requirements:
        return
    pip = [python310 or sys.executable, "-m", "pip"]
    quiet = ["--quiet", "--disable-pip-version-check"]
    env = {**os.environ, "PIP_ROOT_USER_ACTION": "ignore"}
    with tempfile.TemporaryDirectory(prefix="wheelhouse-") as wheelhouse:
        # Universal (py3-none-any) wheels: this venv's pip builds them with PEP 517 isolation.
        subprocess.run([sys.executable, "-m", "pip", "wheel", *quiet, "--no-deps", "--wheel-dir", wheelhouse,
                        *SOURCE_ONLY], check=True, env=env)
        platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run([*pip, "install", *quiet, "--no-compile", "--target", str(target), "--find-links", wheelhouse,
                        "--implementation", "cp", "--python-version", TARGET_PYTHON, "--only-binary=:all:",
                        *platform_args, *requirements], check=True, env=env)


def prune_sdk_modules(directory: Path) -> None:
    for package_name, keep in SDK_MODULES_USED.items():
        root = directory / package_name
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.name in keep:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def prune(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in (".pyc", ".pyo"):
            path.unlink()
    for leftover in directory.glob("bin"):
        shutil.rmtree(leftover, ignore_errors=True)


def compile_bytecode(directory: Path, python310: Optional[str]) -> bool:
    if not python310:
        return False
    subprocess.run([python310, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(directory)], check=True)
    return True


def build(function: str, build_root: Path, python310: Optional[str]) -> Path:
    target = build_root / function
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    install_dependencies(bundled_requirements(function), target, python310)
    shutil.copy2(ROOT / function / "index.py", target / "index.py")
    copy_shared(function, target / "shared")
    prune(target)
    prune_sdk_modules(target)
    compile_bytecode(target, python310)
    return target


def copy_shared(function: str, into: Path) -> None:
    into.mkdir(parents=True)
    shutil.copy2(ROOT / "shared" / "__init__.py", into / "__init__.py")
    for part in SHARED_PARTS[function]:
        shutil.copytree(ROOT / "shared" / part, into / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_zip(source: Path, destination: Path) -> int:
    """A reproducible zip: sorted entries, fixed timestamps, source root as the zip root."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(source)), FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return destination.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--dist-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--no-zip", action="store_true", help="only build the directories (what s deploy uploads)")
    parser.add_argument("functions", nargs="*", default=list(FUNCTIONS))
    args = parser.parse_args()
    python310 = find_python310()
    if not python310:
        print("note: no CPython 3.10 found: dependencies resolved by this Python's pip for 3.10 wheels, and no "
              "bytecode shipped; install python3.10 for exact packages")
    for function in args.functions:
        directory = build(function, args.build_dir, python310)
        if args.no_zip:
            print(f"{directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory}")
            continue
        size = write_zip(directory, args.dist_dir / f"{function}.zip")
        bytecode = "yes" if python310 else "no"
        print(f"{args.dist_dir.name}/{function}.zip  {size / 1024:,.0f} KiB  (bytecode: {bytecode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
