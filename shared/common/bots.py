"""Several robots, one deployment: ``BOTS`` names each robot and what it changes of the deployment's settings.

``BOTS`` is one JSON object that both functions read (one ``.env`` feeds both), with each robot's settings under
the names the environment gives them::

    {"hr": {"DINGTALK_APP_SECRET": "…", "DINGTALK_APP_KEY": "…", "SYSTEM_PROMPT": "你是 HR 助理", "MODEL": "qwen-max"}}

A robot's secret is all the receiver needs (a plain robot has nothing else); its app key and card template make
its answers stream into its own cards. Everything else it names replaces the deployment's value for that robot's
messages, except what belongs to the deployment as a whole (storage, time zone, log level). A robot never inherits
the deployment's own app credentials or card template. The deployment's own robot, set by today's variables, keeps
answering as before, with the name "" (its conversations keep their history).
"""

from __future__ import annotations

import json
import re
from typing import Dict, Mapping, Tuple

from shared.common.errors import ConfigError

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,29}")
CREDENTIALS = ("DINGTALK_APP_KEY", "DINGTALK_APP_SECRET", "DINGTALK_CARD_TEMPLATE_ID", "DINGTALK_CARD_CONTENT_KEY")
DEPLOYMENT_ONLY = ("OSS_MOUNT_POINT", "OSS_BUCKET", "OSS_ENDPOINT", "OSS_REGION", "TZ", "VERBOSE", "USAGE_KEEP_DAYS",
                   "ALLOWED_WEBHOOK_HOSTS", "DINGTALK_API_ENDPOINT", "BOTS")
EXAMPLE = '{"hr": {"DINGTALK_APP_SECRET": "…", "DINGTALK_APP_KEY": "…", "SYSTEM_PROMPT": "你是 HR 助理"}}'

Bots = Dict[str, Dict[str, str]]


def _problem(detail: str) -> ConfigError:
    return ConfigError("BOTS", f"{detail}; e.g. {EXAMPLE}", hint=f"格式不对（{detail}）；例如 {EXAMPLE}")


def parse_bots(text: str) -> Bots:
    """Each robot's settings, checked: a name of lower-case letters, digits, ``-`` and ``_``, a
    ``DINGTALK_APP_SECRET``, and string (or number) values of variables a robot may set. Raises ``ConfigError``
    naming ``BOTS``."""
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise _problem(f"not JSON: {exc.args[0] if exc.args else exc}") from None
    if not isinstance(document, dict):
        raise _problem("not an object of robots")
    bots: Bots = {}
    for name, settings in document.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise _problem(f"robot name {name!r}: use lower-case letters, digits, - and _")
        if not isinstance(settings, dict):
            raise _problem(f"robot {name!r} is not an object of settings")
        values = {}
        for variable, value in settings.items():
            if variable in DEPLOYMENT_ONLY:
                raise _problem(f"robot {name!r} sets {variable}, which is the deployment's")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise _problem(f"robot {name!r}: {variable} must be a string")
            values[str(variable)] = str(value)
        if not values.get("DINGTALK_APP_SECRET", "").strip():
            raise _problem(f"robot {name!r} has no DINGTALK_APP_SECRET")
        bots[name] = values
    return bots


def robot_environment(env: Mapping[str, str], bots: Bots, robot: str) -> Dict[str, str]:
    """The environment the robot's messages are answered with: the deployment's, without its app credentials,
    with the robot's settings on top. ``robot`` "" is the deployment's own robot: ``env`` as it is. Raises
    ``ConfigError`` for a robot ``BOTS`` does not name (it was removed after the message was received)."""
    if not robot:
        return dict(env)
    if robot not in bots:
        raise _problem(f"no robot named {robot!r} (a message for it arrived)")
    return {**{k: v for k, v in env.items() if k not in CREDENTIALS}, **bots[robot]}


def secrets(env: Mapping[str, str], bots: Bots) -> Tuple[Tuple[str, str], ...]:
    """``(name, app secret)`` of every robot the receiver accepts callbacks of: the deployment's own when
    ``DINGTALK_APP_SECRET`` is set, then each of ``BOTS``."""
    own = (env.get("DINGTALK_APP_SECRET") or "").strip()
    return ((("", own),) if own else ()) + tuple((name, values["DINGTALK_APP_SECRET"].strip())
                                                 for name, values in bots.items())
