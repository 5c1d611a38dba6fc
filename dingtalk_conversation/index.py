"""FC HTTP function ``dingtalk_conversation``: handler ``index.handler`` on FC 2.0 and FC 3.0 alike."""

from shared.fc_http import http_function
from shared.receiver import handle

handler = http_function(handle)
