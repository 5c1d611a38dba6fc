"""Every sentence the bot says in the chat, in one place, short and readable."""

HELP = (
    "可用指令：\n"
    "\\clear（或 /clear）清空本会话的上下文\n"
    "\\help（或 /help）显示本帮助\n"
    "直接输入问题即可与机器人对话。"
)
CLEARED = "已清空本会话的上下文。"
UNKNOWN_COMMAND = "未知指令：{command}\n\n" + HELP
EMPTY_QUESTION = "请在 @我 之后输入问题。"
UNSUPPORTED = "暂不支持{kind}消息，目前可以处理文字、富文本中的文字和语音（转写后的文字）。"
KIND_NAMES = {"picture": "图片", "file": "文件", "video": "视频"}
AUDIO_UNHEARD = "没有听清这段语音，请再说一次或改用文字。"
TIMEOUT = "请求超时，请稍后再试。"
RATE_LIMITED = "模型服务繁忙（请求过于频繁），请稍后再试。"
AUTH_FAILED = "模型服务拒绝了 API Key，请联系管理员检查配置。"
REJECTED = "模型服务拒绝了这个请求（HTTP {status}），请换个问法或联系管理员。"
UNAVAILABLE = "模型服务暂时不可用（HTTP {status}），请稍后再试。"
UNREACHABLE = "无法连接模型服务，请稍后再试。"
EMPTY_ANSWER = "模型没有给出回答，请换个问法再试。"
MISCONFIGURED = "机器人配置有误（{variable}），请联系管理员。"
INTERNAL = "处理消息时出错了，请稍后再试。"
NOT_ALLOWED = "抱歉，这个机器人没有为当前{scope}开放，请联系管理员。"
