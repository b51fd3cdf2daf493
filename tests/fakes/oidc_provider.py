"""A small OpenID Connect provider on localhost, for signing in to the console in tests.

    async with FakeOidc(client_id="switchboard", client_secret="s3cret") as idp:
        idp.user = {"sub": "u1", "email": "ann@example.com", "email_verified": True}
        settings = Settings(auth="oidc", oidc_issuer=idp.issuer, oidc_client_id="switchboard", ...)

It serves what a relying party needs and checks what a real provider checks: discovery
(``/.well-known/openid-configuration``), ``/authorize`` (the registered client and redirect URI,
``response_type=code``, the ``openid`` scope, a PKCE S256 challenge, state and nonce), ``/token`` (client
authentication, the one-time code, the same redirect URI, the PKCE verifier) and ``/jwks`` (the public half
of a real RS256 key). ``/authorize`` signs in ``user`` at once, as a provider does for someone already
signed in to it; ``refuse`` makes it answer ``access_denied`` instead. ``overrides`` are merged into the
next ID tokens (a wrong audience, an old ``exp``), and ``sign_with_foreign_key`` signs them with a key the
JWKS does not publish, so a test can check that the relying party refuses them.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey


class FakeOidc:
    """The provider; ``issuer`` is its base URL once started."""

    def __init__(self, client_id: str = "switchboard", client_secret: str = "fake-client-secret") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig", "alg": "RS256"})
        self.foreign = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig", "alg": "RS256"})
        self.user: dict[str, Any] = {"sub": "user-1", "email": "ann@example.com", "email_verified": True}
        self.overrides: dict[str, Any] = {}
        self.sign_with_foreign_key = False
        self.refuse = False
        self.redirect_uris: set[str] = set()  # empty: any http://127.0.0.1 URI (the app's port is random)
        self.codes: dict[str, dict[str, Any]] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.issuer = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeOidc:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.issuer = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def id_token(self, nonce: str | None, **claims: Any) -> str:
        """An ID token for ``user`` as this provider signs it (or with the foreign key)."""
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            **self.user,
            **claims,
        }
        if nonce is not None:
            body["nonce"] = nonce
        body.update(self.overrides)
        key = self.foreign if self.sign_with_foreign_key else self.key
        return jwt.encode({"alg": "RS256", "kid": "test-1"}, body, key)

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.as_dict(private=False)]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_requests.append(q)
        problems = [
            what
            for what, bad in (
                ("unknown client_id", q.get("client_id") != self.client_id),
                ("response_type must be code", q.get("response_type") != "code"),
                ("the openid scope is missing", "openid" not in q.get("scope", "").split()),
                (
                    "PKCE S256 is required",
                    q.get("code_challenge_method") != "S256" or not q.get("code_challenge"),
                ),
                ("state is required", not q.get("state")),
                ("nonce is required", not q.get("nonce")),
                ("unregistered redirect_uri", not self._registered(q.get("redirect_uri", ""))),
            )
            if bad
        ]
        if problems:
            return web.Response(status=400, text="; ".join(problems))  # never redirect to an unknown URI
        if self.refuse:
            params = {"error": "access_denied", "error_description": "The user said no", "state": q["state"]}
            return _redirect(f"{q['redirect_uri']}?{urlencode(params)}")
        code = secrets.token_urlsafe(24)
        self.codes[code] = {**q, "issued": time.monotonic()}
        return _redirect(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append({**form, "authorization": request.headers.get("Authorization", "")})
        if not self._client_ok(request, form):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(form.get("code", ""), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "unknown or used code"}, status=400
            )
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "redirect_uri differs"}, status=400
            )
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != grant["code_challenge"]:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "PKCE verifier mismatch"}, status=400
            )
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.id_token(grant["nonce"]),
            }
        )

    def _registered(self, uri: str) -> bool:
        if self.redirect_uris:
            return uri in self.redirect_uris
        return uri.startswith("http://127.0.0.1:") and uri.endswith("/auth/callback")

    def _client_ok(self, request: web.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return (user, password) == (self.client_id, self.client_secret)
        return (form.get("client_id"), form.get("client_secret")) == (self.client_id, self.client_secret)


def _redirect(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url})
