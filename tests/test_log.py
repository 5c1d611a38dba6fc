import io
import logging

from shared.common import log


def test_secrets_and_tokens_never_reach_the_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        log.setup(10)
        log.add_secret("my-app-secret-value", "sts-secret-value")
        with log.bound(msg_id="m1", request_id="r1"):
            log.get("test").info("secret my-app-secret-value posting to https://oapi.dingtalk.com/robot/sendBySession"
                                 "?session=SESSIONTOKEN123 with Bearer sk-abcdefghijklmnop")
        logging.debug("Perform http request. Headers: {'x-fc-security-token': 'CAIS-long-sts-token', "
                      "'authorization': 'FC STS.ak:signature=='} and sts-secret-value")
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("my-app-secret-value", "SESSIONTOKEN123", "sk-abcdefghijklmnop", "CAIS-long-sts-token",
                   "signature==", "sts-secret-value"):
        assert secret not in text
    assert "msg_id=m1" in text and "request_id=r1" in text
