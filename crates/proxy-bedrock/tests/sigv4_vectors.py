"""Generates sigv4_vectors.json: SigV4 signatures made by botocore (AWS's Python SDK, an independent
implementation of the signer), which tests/sigv4.rs checks proxy-bedrock's signer against.

Run from the repository root with the test venv (`cargo xtask venv` creates it):

    .venv/bin/python crates/proxy-bedrock/tests/sigv4_vectors.py

The credentials and the time are fixed, so the output only changes when the cases do.
"""

import datetime
import json
import pathlib
from unittest import mock

import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

TIME = datetime.datetime(2026, 9, 30, 12, 34, 56, tzinfo=datetime.timezone.utc)
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+session/token=="

MESSAGE = json.dumps(
    {
        "model": "us.anthropic.claude-opus-4-8",
        "max_tokens": 256,
        "stream": True,
        "messages": [{"role": "user", "content": "Hello, ünïcödé ✓"}],
    },
    ensure_ascii=False,
)

ANTHROPIC = {
    "content-type": "application/json",
    "accept": "text/event-stream",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "interleaved-thinking-2025-05-14,context-management-2025-06-27",
}

CASES = [
    {
        "name": "runtime messages, session token",
        "service": "bedrock",
        "region": "us-west-2",
        "url": "https://bedrock-runtime.us-west-2.amazonaws.com/anthropic/v1/messages",
        "headers": ANTHROPIC,
        "body": MESSAGE,
        "token": True,
    },
    {
        "name": "mantle messages, session token",
        "service": "bedrock-mantle",
        "region": "eu-west-1",
        "url": "https://bedrock-mantle.eu-west-1.api.aws/anthropic/v1/messages",
        "headers": ANTHROPIC,
        "body": MESSAGE.replace("us.anthropic", "anthropic"),
        "token": True,
    },
    {
        "name": "mantle count_tokens, no session token",
        "service": "bedrock-mantle",
        "region": "us-east-1",
        "url": "https://bedrock-mantle.us-east-1.api.aws/anthropic/v1/messages/count_tokens",
        "headers": {"content-type": "application/json", "anthropic-version": "2023-06-01"},
        "body": '{"model":"anthropic.claude-sonnet-5","messages":[{"role":"user","content":"hi"}]}',
        "token": False,
    },
    {
        "name": "invoke, model id with an encoded colon (as the SDK sends it)",
        "service": "bedrock",
        "region": "us-east-1",
        "url": "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
        "headers": {"content-type": "application/json", "accept": "application/json"},
        "body": '{"anthropic_version":"bedrock-2023-05-31","max_tokens":16,"messages":[]}',
        "token": True,
    },
    {
        "name": "invoke-with-response-stream, raw colon in the path",
        "service": "bedrock",
        "region": "ap-northeast-1",
        "url": "https://bedrock-runtime.ap-northeast-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1:0/invoke-with-response-stream",
        "headers": {"content-type": "application/json", "accept": "application/vnd.amazon.eventstream"},
        "body": "{}",
        "token": True,
    },
    {
        "name": "local endpoint with a port and a query",
        "service": "bedrock",
        "region": "us-east-1",
        "url": "http://127.0.0.1:8123/anthropic/v1/messages?beta=true",
        "headers": {"content-type": "application/json", "x-custom": "  spaced   out  value "},
        "body": MESSAGE,
        "token": False,
    },
    {
        "name": "empty body",
        "service": "bedrock-mantle",
        "region": "us-east-2",
        "url": "https://bedrock-mantle.us-east-2.api.aws/anthropic/v1/messages",
        "headers": {},
        "body": "",
        "token": True,
    },
]


def sign(case):
    creds = Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN if case["token"] else None)
    request = AWSRequest(
        method="POST",
        url=case["url"],
        data=case["body"].encode("utf-8"),
        headers=dict(case["headers"]),
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=TIME):
        SigV4Auth(creds, case["service"], case["region"]).add_auth(request)
    out = dict(case)
    out["session_token"] = SESSION_TOKEN if case["token"] else None
    del out["token"]
    out["x_amz_date"] = request.headers["X-Amz-Date"]
    out["authorization"] = request.headers["Authorization"]
    return out


def main():
    vectors = {
        "generator": f"botocore {botocore.__version__} SigV4Auth",
        "time": TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "cases": [sign(c) for c in CASES],
    }
    path = pathlib.Path(__file__).with_name("sigv4_vectors.json")
    path.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(CASES)} vectors to {path}")


if __name__ == "__main__":
    main()
