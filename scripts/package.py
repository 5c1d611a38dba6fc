#!/usr/bin/env python3
"""Build the FC code packages: ``build/<function>/`` (for ``s deploy``) and ``dist/<function>.zip`` (console).

Each package has ``index.py`` at its root, the parts of ``shared/`` the function uses beside it,
and the third-party packages the python3.10 runtime lacks: exactly the versions pinned in the
function's ``requirements.lock``, installed for Linux x86_64 / CPython 3.10 from manylinux wheels.
What the runtime provides (``requests``, ``aliyun-fc2``, and what its built-in ``oss2`` needs) is not
bundled, nor what only they need (``urllib3``, ``cryptography`` ...); a dependency that a bundled
package needs too (``idna`` ...) is bundled at its pinned version. ``oss2`` itself is bundled: the
built-in 2.16.0 cannot sign V4, and the bundled one shadows it. FC's code directory is read-only, so
Python cannot cache bytecode there: the package ships it, compiled by a CPython 3.10 with
hash-based pycs that stay valid whatever mtimes unzipping gives.

"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Set

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("dingtalk_conversation", "dingtalk_chatgpt_reply")
# Built into FC's python3.10 (devstack/fc-python310-runtime.txt): requests with its charset-normalizer,
# aliyun-fc2, and the dependencies of its oss2 2.16.0, which a newer oss2 declares unchanged.
RUNTIME_PROVIDED = {"requests", "aliyun-fc2", "charset-normalizer", "crcmod", "pycryptodome",
                    "aliyun-python-sdk-core", "aliyun-python-sdk-kms", "six"}
# Pure Python, published on PyPI as source only.
SOURCE_ONLY = {"oss2"}
TARGET_PYTHON = "3.10"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux1_x86_64", "linux_x86_64")
PRUNE_DIRS = {"__pycache__", "tests", "test", "testing"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
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


def normal_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> Dict[str, Set[str]]:
    """``name==version`` -> what needs it, from uv's ``# via`` notes (``-r ...`` for a top-level requirement)."""
    pins: Dict[str, Set[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        pin = PIN.match(line)
        if pin:
            current = f"{normal_name(pin.group(1))}=={pin.group(2)}"
            pins[current] = set()
            continue
        note = line.strip().lstrip("#").strip()
        if current and note and note != "via":
            source = note[len("via"):].strip() if note.startswith("via ") else note
            pins[current].add(source if source.startswith("-r") else normal_name(source))
    return pins


def bundled_pins(function: str) -> List[str]:
    """The pinned distributions the package carries: not provided by the runtime, and needed by the
    function itself or by another bundled distribution."""
    pins = read_lock(ROOT / function / "requirements.lock")
    names = {pin.split("==")[0]: pin for pin in pins}
    bundled: Set[str] = set()
    changed = True
    while changed:
        changed = False
        for pin, needed_by in pins.items():
            name = pin.split("==")[0]
            if name in RUNTIME_PROVIDED or pin in bundled:
                continue
            if any(source.startswith("-r") or names.get(source) in bundled for source in needed_by):
                bundled.add(pin)
                changed = True
    return sorted(bundled)


def install_dependencies(pins: List[str], target: Path) -> None:
    """Exactly the pinned wheels, no resolution: the lock was made for CPython 3.10 on Linux x86_64.
    A pure-Python package published as source only (``oss2``) is built from that source."""
    if not pins:
        return
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    names = [pin.split("==")[0] for pin in pins]
    source_only = [arg for name in names if name in SOURCE_ONLY for arg in ("--no-binary", name)]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                    "--no-deps", "--target", str(target), "--implementation", "cp", "--python-version", TARGET_PYTHON,
                    "--only-binary=:all:", *source_only, *platform_args, *pins], check=True,
                   env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})


def prune(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_file() and path.suffix in (".pyc", ".pyo"):
            path.unlink()
    shutil.rmtree(directory / "bin", ignore_errors=True)  # pip's console scripts


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
    pins = bundled_pins(function)
    install_dependencies(pins, target)
    shutil.copy2(ROOT / function / "index.py", target / "index.py")
    copy_shared(function, target / "shared")
    prune(target)
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
        print("说明：没有找到 CPython 3.10：依赖按 3.10 的 wheel 由当前 Python 的 pip 安装，zip 里不带字节码；"
              "装上 python3.10 可得到与 FC 完全一致的包")
    for function in args.functions:
        directory = build(function, args.build_dir, python310)
        if args.no_zip:
            print(f"{directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory}")
            continue
        size = write_zip(directory, args.dist_dir / f"{function}.zip")
        bytecode = "有" if python310 else "无"
        print(f"{args.dist_dir.name}/{function}.zip  {size / 1024:,.0f} KiB（字节码：{bytecode}）")
    return 0


if __name__ == "__main__":
    sys.exit(main())
