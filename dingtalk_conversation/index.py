"""FC HTTP function ``dingtalk_conversation``: handler ``index.handler`` on FC 2.0 and FC 3.0 alike."""

from shared.receiver.app import handle
from shared.receiver.fc.adapters import http_function

handler = http_function(handle)
