"""Baseline receiver: the tutorial's FC 2.0 WSGI handler, as SEED.md describes it."""

import base64
import hmac
import json
import logging
import os
import time
from hashlib import sha256

import fc2
import requests  # noqa: F401  (imported by the original at module level)


def handler(environ, start_response):
    endpoint = os.environ.get("ENDPOINT")
    app_secret = os.environ.get("DINGTALK_APP_SECRET")
    service_name = os.environ.get("SERVICE_NAME")
    function_name = os.environ.get("CHATGPT_FUNCTION")
    logging.getLogger().setLevel(int(os.environ.get("VERBOSE", 25)))

    timestamp = environ["HTTP_TIMESTAMP"]
    sign = environ["HTTP_SIGN"]
    string_to_sign = f"{timestamp}\n{app_secret}".encode("utf-8")
    digest = hmac.new(app_secret.encode("utf-8"), string_to_sign, digestmod=sha256).digest()
    if base64.b64encode(digest).decode("utf-8") != sign:
        start_response("403 Forbidden", [])
        return [b""]

    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(size))
    expired = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(body["sessionWebhookExpiredTime"] / 1000))
    creds = environ["fc.context"].credentials
    client = fc2.Client(endpoint=endpoint, accessKeyID=creds.access_key_id,
                        accessKeySecret=creds.access_key_secret, securityToken=creds.security_token)
    payload = {"sessionExpiredTime": expired, "sessionWebhook": body["sessionWebhook"],
               "question": body["text"]["content"], "id": body["senderNick"]}
    client.invoke_function(service_name, function_name, payload=json.dumps(payload).encode("utf-8"),
                           headers={"x-fc-invocation-type": "Async"})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]
