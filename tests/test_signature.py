import pytest

from shared.common.errors import SignatureError
from shared.receiver.dingtalk.signature import compute_sign, verify_signature

VECTOR_SECRET = "client-secret-for-test"
VECTOR_TIMESTAMP = "1684493546276"
VECTOR_SIGN = "nwBJQmaBLv9+5/sSS/66jcFc1/kGY5wo38L88LOGfRU="
NOW = int(VECTOR_TIMESTAMP)


def test_dingtalk_published_vector_is_reproduced():
    assert compute_sign(VECTOR_SECRET, VECTOR_TIMESTAMP) == VECTOR_SIGN


def test_valid_signature_within_window_is_accepted():
    verify_signature(VECTOR_SECRET, VECTOR_TIMESTAMP, VECTOR_SIGN, now_ms=NOW + 59 * 60 * 1000, window_seconds=3600)


@pytest.mark.parametrize("skew_ms", [3600 * 1000 + 1, -(3600 * 1000 + 1)])
def test_timestamp_more_than_an_hour_off_is_rejected(skew_ms):
    with pytest.raises(SignatureError, match="window"):
        verify_signature(VECTOR_SECRET, VECTOR_TIMESTAMP, VECTOR_SIGN, now_ms=NOW + skew_ms, window_seconds=3600)


def test_tighter_window_is_honoured():
    with pytest.raises(SignatureError, match="window"):
        verify_signature(VECTOR_SECRET, VECTOR_TIMESTAMP, VECTOR_SIGN, now_ms=NOW + 61_000, window_seconds=60)


@pytest.mark.parametrize("sign", ["", VECTOR_SIGN[:-2] + "A=", "not base64 at all", "签名"])
def test_wrong_signature_is_rejected(sign):
    with pytest.raises(SignatureError):
        verify_signature(VECTOR_SECRET, VECTOR_TIMESTAMP, sign, now_ms=NOW, window_seconds=3600)


@pytest.mark.parametrize("timestamp, sign", [(None, VECTOR_SIGN), (VECTOR_TIMESTAMP, None), ("abc", VECTOR_SIGN)])
def test_missing_or_malformed_headers_are_rejected(timestamp, sign):
    with pytest.raises(SignatureError):
        verify_signature(VECTOR_SECRET, timestamp, sign, now_ms=NOW, window_seconds=3600)


def test_empty_secret_never_accepts_anything():
    with pytest.raises(SignatureError, match="secret"):
        verify_signature("", VECTOR_TIMESTAMP, compute_sign("", VECTOR_TIMESTAMP), now_ms=NOW, window_seconds=3600)
