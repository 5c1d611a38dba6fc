"""Tool: draw a picture (``draw_image``) with ``IMAGE_MODEL`` through ``/v1/images/generations``.

How a DingTalk robot can show a generated picture (../shared/reference/PLATFORM.md, "Showing a picture",
from DingTalk's robot message types and the official SDKs): the session webhook takes text and markdown
only, and markdown shows an image from a URL that DingTalk's clients can fetch; the robot OpenAPI's
``sampleImageMsg`` takes a ``photoURL`` too. So the picture must be at a URL: providers that answer
with one (DashScope, OpenAI's ``url`` format; temporary but public) are shown as they are, and a picture
that comes back as base64 is put in the bucket (``OSS_BUCKET``) and shown through a V4-signed URL valid
for ``SIGNED_URL_SECONDS``. The bot itself appends the picture to the answer (markdown ``![](url)``),
so it does not depend on the model copying a long URL.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, Dict, List, Optional

from shared.common.random_ids import random_id
from shared.reply.tools.base import ToolError, ToolResult, one_string, status_line, text_argument

SIGNED_URL_SECONDS = 7 * 24 * 3600  # the longest a V4-signed URL may live
SIZE = "1024x1024"

Upload = Callable[[bytes], str]  # PNG bytes -> a URL DingTalk's clients can fetch


class DrawImage:
    name = "draw_image"
    description = ("Draw a picture (poster, illustration, photo-like image) from a detailed description. "
                   "The picture is shown to the user automatically; describe it briefly in the answer.")
    parameters: Dict[str, Any] = one_string("prompt", "a detailed description of the picture to draw")

    def __init__(self, base_url: str, api_key: str, model: str, upload: Optional[Upload]) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.model = model
        self.upload = upload
        self.images: List[str] = []

    def status(self, arguments: Dict[str, Any]) -> str:
        return status_line("🎨 正在画图", arguments, "prompt", 20)

    def run(self, arguments: Dict[str, Any], seconds: float) -> ToolResult:
        import openai

        prompt = text_argument(arguments, "prompt")
        client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key, timeout=seconds, max_retries=0)
        try:
            answer = client.images.generate(model=self.model, prompt=prompt, n=1, size=SIZE)
        except openai.OpenAIError as exc:
            raise ToolError(f"{self.model} could not draw: {type(exc).__name__}") from None
        image = answer.data[0] if answer.data else None
        url = getattr(image, "url", None)
        if not url and getattr(image, "b64_json", None):
            if self.upload is None:
                raise ToolError("the picture came back as data and no OSS_BUCKET is set to show it from")
            url = self.upload(base64.b64decode(image.b64_json))
        if not url:
            raise ToolError(f"{self.model} answered without a picture")
        self.images.append(url)
        return ToolResult("The picture was drawn and is shown to the user below your answer.", ())


def bucket_upload(blobs: Any) -> Upload:
    """Put a PNG in the bucket (``ApiBlobs``) and return a V4-signed GET URL for it."""

    def upload(data: bytes) -> str:
        name = f"images/{random_id()}.png"
        blobs.write(name, data)
        return blobs.bucket.sign_url("GET", blobs.prefix + name, SIGNED_URL_SECONDS, slash_safe=True)

    return upload
