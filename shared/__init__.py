"""The code behind the two functions, arranged by who uses it and by whom it talks to.

- ``common/``: both functions. Errors, logging, settings, the message passed between them.
- ``receiver/``: ``dingtalk_conversation`` only. ``dingtalk/`` checks and parses DingTalk's
  callback; ``fc/`` adapts FC's HTTP entry forms and invokes the reply function through the FC API.
- ``reply/``: ``dingtalk_chatgpt_reply`` only. ``dingtalk/`` posts answers (session webhook,
  OpenAPI, cards); ``llm/`` calls the model; ``oss/`` keeps history on the OSS mount.

Packaging copies ``common/`` and the function's own part next to its ``index.py``.
"""
