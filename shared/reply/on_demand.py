"""Third-party packages the reply package keeps off ``sys.path`` until a tool needs them.

FC's requests 2.28.1 imports ``chardet`` at start-up whenever it can find it, and only the link
reader (readability) needs it: at the package root it would cost every cold start about 15 ms
before the first card. ``scripts/package.py`` therefore installs it into ``on_demand/`` beside
``index.py``. Run from source the folder is absent, and the packages come from the environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

FOLDER = Path(__file__).resolve().parents[2] / "on_demand"


def use_on_demand_packages() -> None:
    """Make the packages in ``on_demand/`` importable; idempotent, and nothing when there is none."""
    folder = str(FOLDER)
    if FOLDER.is_dir() and folder not in sys.path:
        sys.path.append(folder)
