"""The code behind the two functions, arranged by who uses it and by whom it talks to.

- ``common/``: both functions. Errors, logging, settings, typed JSON reads, the message passed between them.
- ``receiver/``: ``dingtalk_conversation`` only. ``dingtalk/`` checks and parses DingTalk's
  callback; ``fc/`` adapts FC's HTTP entry forms and invokes the reply function through the FC API
  (FC 2.0 with ``aliyun-fc2``, FC 3.0 with its own ACS3 signer).
- ``reply/``: ``dingtalk_chatgpt_reply`` only. At its top, what talks to no platform: the entry, one
  answer per message, commands, the question (pictures, quotes, files), documents, delivery order.
  ``dingtalk/`` posts answers and fetches media (session webhook, OpenAPI: token, cards, robot
  messages, message files); ``llm/`` calls the model; ``oss/`` keeps history, claims and the API-quota
  note on the OSS mount (claims through the OSS API when a bucket is configured).

Packaging copies ``common/`` and the function's own part next to its ``index.py``.
"""
