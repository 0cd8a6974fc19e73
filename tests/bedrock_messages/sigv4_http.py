"""Raw HTTP to bedrock-sim's Messages API, signed by botocore's SigV4 signer or not at all (a module of
its own name, so that it never collides with another suite's conftest when the suites run together)."""

import json
import urllib.error
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

CREDENTIALS = Credentials("AKIDTEST", "secret")
REGION = "us-east-1"


class Reply:
    """An HTTP answer: status, headers (lower-case names) and the raw body."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, {k.lower(): v for k, v in headers.items()}, body

    def json(self):
        return json.loads(self.body)

    def sse(self):
        """The (event, data) pairs of a plain SSE body."""
        out = []
        for frame in self.body.decode().split("\n\n"):
            if not frame.strip():
                continue
            fields = dict(line.split(": ", 1) for line in frame.split("\n"))
            out.append((fields["event"], json.loads(fields["data"])))
        return out


def send(url, body, headers=None, method="POST"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return Reply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, dict(e.headers), e.read())


def signed(url, body, service, headers=None):
    """POSTs `body` to `url` signed by botocore's SigV4 signer for `service`."""
    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=url, data=data,
                         headers={"content-type": "application/json", "anthropic-version": "2023-06-01",
                                  **(headers or {})})
    SigV4Auth(CREDENTIALS, service, REGION).add_auth(request)
    return send(url, data, dict(request.headers))
