"""Request authentication: HTTP basic (the security plugin) and AWS SigV4 (Amazon OpenSearch Service).

SigV4 is verified, not just looked for: the canonical request is rebuilt from what arrived
(method, path, query, the signed headers, the SHA-256 of the body) and the signature
recomputed with the configured secret key, following the AWS *Signature Version 4* spec.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from calendar import timegm
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote


class Denied(Exception):
    def __init__(self, status: int, body, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


@dataclass(frozen=True)
class BasicAuth:
    users: dict[str, str]

    def check(self, method: str, raw_path: str, headers, body: bytes) -> None:
        header = headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, password = "", None
            if user in self.users and hmac.compare_digest(self.users[user], password or ""):
                return
        raise Denied(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="OpenSearch Security"'})


@dataclass(frozen=True)
class SigV4Auth:
    access_key: str
    secret_key: str
    region: str
    service: str = "es"
    max_skew_seconds: int = 300

    def check(self, method: str, raw_path: str, headers, body: bytes) -> None:
        header = headers.get("Authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                         r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})", header)
        action = f"es:ESHttp{method.capitalize()}"
        if not m:
            raise Denied(403, {"Message": f"User: anonymous is not authorized to perform: {action}"})
        key, day, region, service, signed, signature = m.groups()
        if key != self.access_key:
            raise Denied(403, {"message": "The security token included in the request is invalid."})
        if region != self.region or service != self.service:
            raise Denied(403, {"message": f"Credential should be scoped to a valid region and service "
                                          f"('{self.region}', '{self.service}'), not ('{region}', '{service}')."})
        amz_date = headers.get("X-Amz-Date", "")
        try:
            when = timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise Denied(403, {"message": "Authorization header requires existence of either a 'X-Amz-Date' "
                                          "or a 'Date' header."}) from None
        if amz_date[:8] != day or abs(time.time() - when) > self.max_skew_seconds:
            raise Denied(403, {"message": "Signature expired or not yet valid."})
        body_hash = hashlib.sha256(body).hexdigest()
        declared = headers.get("X-Amz-Content-SHA256")
        if declared not in (None, body_hash):
            raise Denied(400, {"message": "The provided 'x-amz-content-sha256' header does not match what was "
                                          "computed."})
        names = signed.split(";")
        if "host" not in names:
            raise Denied(403, {"message": "'Host' must be a signed header."})
        lowered = {k.lower(): v for k, v in headers.items()}
        if any(n not in lowered for n in names):
            raise Denied(403, {"message": "A signed header is missing from the request."})
        path, _, query = raw_path.partition("?")
        pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                       for k, v in parse_qsl(query, keep_blank_values=True))
        canonical = "\n".join([
            method,
            quote(path, safe="/~"),  # non-S3 services encode the (already encoded) path once more
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{n}:{' '.join(lowered[n].split())}\n" for n in names),
            signed,
            declared or body_hash,
        ])
        scope = f"{day}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = ("AWS4" + self.secret_key).encode()
        for part in (day, region, service, "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise Denied(403, {"message": "The request signature we calculated does not match the signature you "
                                          "provided. Check your AWS Secret Access Key and signing method. Consult "
                                          "the service documentation for details."})
