"""Baseline reply: the tutorial's event handler, as SEED.md describes it."""

import json
import logging
import os
import pickle

import requests


def history_path(user_id):
    return os.path.join(os.environ.get("OSS_MOUNT_POINT", "/mnt/oss"), f"{user_id}.pkl")


def load_history(user_id):
    try:
        with open(history_path(user_id), "rb") as handle:
            return pickle.load(handle)
    except FileNotFoundError:
        return []


def save_history(user_id, history):
    with open(history_path(user_id), "wb") as handle:
        pickle.dump(history, handle)


def ask(messages):
    endpoint = os.environ.get("ENDPOINT", "https://api.openai.com")
    key = os.environ.get("CHATGPT_API_KEY") if endpoint == "https://api.openai.com" else os.environ.get("USER_API_KEY")
    try:
        response = requests.post(f"{endpoint}/v1/chat/completions", timeout=int(os.environ.get("TIMEOUT", 55)),
                                 headers={"Authorization": f"Bearer {key}"},
                                 json={"model": "gpt-3.5-turbo", "messages": messages, "temperature": 0.7})
    except requests.exceptions.Timeout:
        return "ChatGPT 请求超时！"
    data = response.json()
    if "choices" not in data:
        return response.text
    return data["choices"][0]["message"]["content"]


def send(webhook, text):
    requests.post(webhook, json={"msgtype": "text", "text": {"content": text}})


def handler(event, context):
    logging.getLogger().setLevel(int(os.environ.get("VERBOSE", 25)))
    data = json.loads(event)
    question, user_id, webhook = data["question"], data["id"], data["sessionWebhook"]
    if question.startswith("\\"):
        if question == "\\clear":
            if os.path.exists(history_path(user_id)):
                os.remove(history_path(user_id))
            send(webhook, "已清除历史")
        else:
            send(webhook, f"未知指令：{question}")
        return
    full_history = load_history(user_id)
    length = int(os.environ.get("HISTORY_LENGTH", 5))
    messages = full_history[-length * 2:] + [{"role": "user", "content": question}]
    answer = ask(messages)
    full_history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    save_history(user_id, full_history)
    send(webhook, answer)
