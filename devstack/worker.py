"""One FC instance of an event function: ``python -m devstack.worker <function_dir>``.

Reads one JSON task a line on stdin, calls ``index.handler(event_bytes, context)`` with the
process's own environment (the function's), writes one JSON result a line on stdout. Logs go
to stderr, as on FC.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import traceback
from pathlib import Path

from devstack.fc_context import Credentials, FCContext, FunctionMeta


def load_handler(function_dir: Path):
    """Import ``index.py`` the way FC does: the code root first on ``sys.path``."""
    sys.path.insert(0, str(function_dir))
    spec = importlib.util.spec_from_file_location("index", function_dir / "index.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["index"] = module
    spec.loader.exec_module(module)
    return module.handler


def main() -> None:
    function_dir = Path(sys.argv[1]).resolve()
    handler = load_handler(function_dir)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        task = json.loads(line)
        context = FCContext(FunctionMeta(function_dir.name), request_id=task["request_id"],
                            credentials=Credentials(**task.get("credentials", {})))
        started = time.monotonic()
        try:
            result = handler(task["payload"].encode("utf-8"), context)
            outcome = {"request_id": task["request_id"], "result": result}
        except Exception:
            traceback.print_exc()
            outcome = {"request_id": task["request_id"], "error": traceback.format_exc(limit=3)}
        outcome["seconds"] = round(time.monotonic() - started, 4)
        print(json.dumps(outcome, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
