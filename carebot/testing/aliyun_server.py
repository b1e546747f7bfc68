"""A local Alibaba Cloud SMS API (dysmsapi 2017-05-25: SendSms, QuerySendDetails) for tests.

It speaks the RPC-style API as the official SDK calls it: ``POST /`` with the action in
``x-acs-action`` and the parameters in the query string, signed with ACS3-HMAC-SHA256 (the
SDK's default, Alibaba Cloud's "V3 request signature"). The signature is verified here from
the documented algorithm (canonical request → SHA-256 → HMAC-SHA256 with the AccessKey
secret), not with the SDK's signer; a reused ``x-acs-signature-nonce`` is refused as Alibaba
Cloud refuses it. Answers can be scripted (business error codes with HTTP 200, HTTP errors,
delays) and every request is recorded::

    with FakeAliyunServer() as server:
        server.script([Reply(code="isv.BUSINESS_LIMIT_CONTROL")])
        ...  # point AliyunSettings at server.endpoint with protocol "http" and send
        assert server.requests[-1]["TemplateCode"] == "SMS_465120001"
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo

from carebot.testing._http import LocalHTTPServer, LocalServer

__all__ = [
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_ACCESS_KEY_SECRET",
    "FakeAliyunServer",
    "Reply",
    "canonical_request",
]

DEFAULT_ACCESS_KEY_ID = "LTAI5tCarebotTestKey"
DEFAULT_ACCESS_KEY_SECRET = "carebot-test-secret"
ALGORITHM = "ACS3-HMAC-SHA256"
CHINA = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Reply:
    """One scripted answer: ``code`` in the body of an HTTP ``status`` answer, after ``delay``.

    ``Reply()`` is a normal ``OK``; ``Reply(code="isv.MOBILE_NUMBER_ILLEGAL")`` a business
    error (Alibaba Cloud answers those with HTTP 200); ``Reply(status=503,
    code="ServiceUnavailable")`` an outage.
    """

    code: str = "OK"
    message: str | None = None
    status: int = 200
    delay: float = 0.0


def canonical_request(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], signed: list[str]
) -> str:
    """The V3 canonical request: method, URI, sorted encoded query, signed headers, body hash."""
    encoded = sorted((key, quote(value, safe="~")) for key, value in query)
    canonical_query = "&".join(f"{key}={value}" for key, value in encoded)
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    return "\n".join(
        [
            method,
            path or "/",
            canonical_query,
            canonical_headers,
            ";".join(signed),
            headers.get("x-acs-content-sha256", ""),
        ]
    )


class FakeAliyunServer(LocalServer):
    """A threaded HTTP server on 127.0.0.1 that answers like dysmsapi's ``SendSms``."""

    def __init__(
        self,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
    ) -> None:
        super().__init__(_Handler, name="fake-aliyun")
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._requests: list[dict[str, str]] = []
        self._answers: list[str] = []
        self._nonces: set[str] = set()
        self.lookups = 0

    @property
    def endpoint(self) -> str:
        """``host:port``, for ``CAREBOT_ALIYUN__ENDPOINT`` (with protocol ``http``)."""
        host, port = self.address
        return f"{host}:{port}"

    def script(self, replies: Iterable[Reply]) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def requests(self) -> list[dict[str, str]]:
        """The parameters of every correctly signed ``SendSms``, in arrival order."""
        with self._lock:
            return [{k: v for k, v in r.items() if k != "_sent_at"} for r in self._requests]

    @property
    def answers(self) -> list[str]:
        """The ``Code`` answered to each request, signed or not, in order."""
        with self._lock:
            return list(self._answers)

    @property
    def accepted(self) -> list[dict[str, str]]:
        """The requests answered ``OK``."""
        with self._lock:
            pairs = zip(self._requests, self._signed_answers(), strict=True)
            return [{k: v for k, v in r.items() if k != "_sent_at"} for r, a in pairs if a == "OK"]

    def wait_for(self, count: int, timeout: float = 5.0, *, accepted: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.accepted if accepted else self.requests) >= count:
                return True
            time.sleep(0.02)
        return len(self.accepted if accepted else self.requests) >= count

    def _authenticate(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
    ) -> tuple[int, str, str] | None:
        """None when the request is correctly signed; else the HTTP status and error."""
        auth = headers.get("authorization", "")
        algorithm, _, rest = auth.partition(" ")
        fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
        required = {"Credential", "SignedHeaders", "Signature"}
        if algorithm != ALGORITHM or not required <= set(fields):
            return 400, "MissingAuthorization", "Authorization is missing or malformed."
        if fields["Credential"] != self.access_key_id:
            return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-acs-date" not in signed:
            return 400, "IncompleteSignature", "host and x-acs-date must be signed."
        request = canonical_request(method, path, query, headers, signed)
        digest = hashlib.sha256(request.encode("utf-8")).hexdigest()
        expected = hmac.new(
            self.access_key_secret.encode(), f"{ALGORITHM}\n{digest}".encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, fields["Signature"]):
            return 400, "SignatureDoesNotMatch", "Specified signature is not matched."
        nonce = headers.get("x-acs-signature-nonce", "")
        with self._lock:
            if not nonce or nonce in self._nonces:
                return 400, "SignatureNonceUsed", "Specified signature nonce was used already."
            self._nonces.add(nonce)
        return None

    def _details(self, query: dict[str, str]) -> dict[str, Any]:
        """``QuerySendDetails``: the accepted messages to one number on one day (China time)."""
        with self._lock:
            self.lookups += 1
            found = [
                {
                    "PhoneNum": r["PhoneNumbers"],
                    "SendStatus": 1,  # 1 waiting for the receipt, 2 failed, 3 delivered
                    "ErrCode": "",
                    "TemplateCode": r["TemplateCode"],
                    "Content": "",
                    "SendDate": r["_sent_at"],
                    "ReceiveDate": "",
                    "OutId": r.get("OutId", ""),
                }
                for r, answer in zip(self._requests, self._signed_answers(), strict=True)
                if answer == "OK"
                and r["PhoneNumbers"] == query.get("PhoneNumber")
                and r["_sent_at"][:10].replace("-", "") == query.get("SendDate")
            ]
        return {
            "Code": "OK",
            "Message": "OK",
            "TotalCount": len(found),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": found},
        }

    def _signed_answers(self) -> list[str]:
        return [a for a in self._answers if a not in _AUTH_CODES]

    def _answer(self, params: dict[str, str]) -> Reply:
        with self._lock:
            sent_at = datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S")
            self._requests.append({**params, "_sent_at": sent_at})
            reply = self._script.popleft() if self._script else Reply()
            if reply.code == "OK":
                reply = _checked(params) or reply
            self._answers.append(reply.code)
            return reply


_AUTH_CODES = {
    "MissingAuthorization",
    "InvalidAccessKeyId.NotFound",
    "IncompleteSignature",
    "SignatureDoesNotMatch",
    "SignatureNonceUsed",
    "InvalidBody",
}


def _checked(params: dict[str, str]) -> Reply | None:
    """What Alibaba Cloud itself would refuse in a well-signed request."""
    for name in ("PhoneNumbers", "SignName", "TemplateCode"):
        if not params.get(name):
            return Reply(code="MissingParameter", message=f"{name} is mandatory", status=400)
    numbers = params["PhoneNumbers"]
    if not numbers.isdigit() or (len(numbers) == 11 and not numbers.startswith("1")):
        return Reply(code="isv.MOBILE_NUMBER_ILLEGAL", message="非法手机号")
    raw = params.get("TemplateParam")
    if raw:
        try:
            values = json.loads(raw)
        except json.JSONDecodeError:
            return Reply(code="isv.INVALID_JSON_PARAM", message="JSON参数不合法，只接受字符串值")
        if any(len(str(v)) > 35 for v in values.values()):
            return Reply(code="isv.PARAM_LENGTH_LIMIT", message="参数超出长度限制")
    return None


class _Handler(BaseHTTPRequestHandler):
    server: LocalHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        fake: FakeAliyunServer = self.server.fake
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        url = urlsplit(self.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            failure: tuple[int, str, str] | None = (400, "InvalidBody", "Body hash mismatch.")
        else:
            failure = fake._authenticate("POST", url.path, query, headers)
        if failure is not None:
            status, code, message = failure
            with fake._lock:
                fake._answers.append(code)
            self._json(status, {"Code": code, "Message": message})
            return
        action = headers.get("x-acs-action")
        if action == "QuerySendDetails":
            self._json(200, fake._details(dict(query)))
            return
        if action != "SendSms":
            self._json(404, {"Code": "InvalidAction.NotFound", "Message": "Unknown action."})
            return
        reply = fake._answer(dict(query))
        if reply.delay:
            fake.stopping.wait(reply.delay)
        if reply.code == "OK":
            biz = f"{int(time.time() * 1000)}^{uuid.uuid4().int % 10**10}"
            self._json(200, {"Code": "OK", "Message": "OK", "BizId": biz})
        else:
            self._json(reply.status, {"Code": reply.code, "Message": reply.message or reply.code})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        payload = {**payload, "RequestId": str(uuid.uuid4()).upper()}
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
