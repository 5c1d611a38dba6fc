"""A function that answers 200 at once, in either FC form: the floor of the local HTTP runtime under load."""


def handler(first, second):
    if isinstance(first, dict):
        second("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}
