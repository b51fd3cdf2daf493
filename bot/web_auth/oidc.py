"""OpenID Connect sign-in with authlib: discovery, the authorization code flow with PKCE, state and nonce,
and the ID token checked against the provider's published keys (RS256/ES256), issuer, audience and nonce.
"""

from __future__ import annotations

from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bot.config import Settings
from bot.errors import NotPermitted, UpstreamUnavailable

ALGORITHMS = ["RS256", "ES256"]
TIMEOUT = 10.0


class OidcClient:
    """One configured provider; its discovery document and keys are fetched once and kept."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id  # guard.check_binding refuses less at start
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self.client_secret = secret.get_secret_value() if secret else None
        self.scopes = settings.oidc_scopes
        self._meta: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    async def begin(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what the callback must check (kept in a signed cookie)."""
        meta = await self.metadata()
        flow = {
            "state": generate_token(32),
            "nonce": generate_token(32),
            "verifier": generate_token(64),
            "redirect": redirect_uri,
        }
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"],
                state=flow["state"],
                code_verifier=flow["verifier"],
                nonce=flow["nonce"],
            )
        return str(url), flow

    async def finish(self, flow: dict[str, str], code: str) -> dict[str, Any]:
        """Trade the code for tokens and return the verified ID token's claims."""
        meta = await self.metadata()
        async with self._client(flow["redirect"]) as client:
            try:
                token = await client.fetch_token(
                    meta["token_endpoint"],
                    code=code,
                    code_verifier=flow["verifier"],
                    grant_type="authorization_code",
                )
            except OAuthError as exc:
                raise NotPermitted(
                    f"The sign-in provider refused the sign-in: {exc.error} {exc.description or ''}".strip()
                ) from None
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(
                    f"The sign-in provider's token endpoint did not answer: {exc}"
                ) from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise NotPermitted("The sign-in provider sent no ID token (is the 'openid' scope granted?).")
        return await self.verify(id_token, flow["nonce"])

    async def verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of an ID token signed by this provider, for this client and this sign-in."""
        try:
            try:
                decoded = jwt.decode(id_token, await self.keys(), algorithms=ALGORITHMS)
            except ValueError:  # a key id we do not know: the provider may have rotated its keys
                decoded = jwt.decode(id_token, await self.keys(refresh=True), algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=60,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                nonce={"essential": True, "value": nonce},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise NotPermitted(f"The ID token did not verify ({exc}); sign in again.") from None
        return dict(decoded.claims)

    async def metadata(self) -> dict[str, Any]:
        if self._meta is None:
            meta = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if str(meta.get("issuer", "")).rstrip("/") != self.issuer:
                raise UpstreamUnavailable(
                    f"The provider at {self.issuer} names itself {meta.get('issuer')!r}; "
                    "check SWITCHBOARD_OIDC_ISSUER."
                )
            self._meta = meta
        return self._meta

    async def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            published = await self._get_json((await self.metadata())["jwks_uri"])
            self._keys = KeySet.import_key_set(published)  # type: ignore[arg-type]
        return self._keys

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            self.client_id,
            self.client_secret,
            scope=self.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if self.client_secret else "none",
            timeout=TIMEOUT,
        )

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as client:
                res = await client.get(url)
                res.raise_for_status()
                data = res.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UpstreamUnavailable(f"The sign-in provider did not answer at {url}: {exc}") from None
        if not isinstance(data, dict):
            raise UpstreamUnavailable(f"The sign-in provider sent no JSON object at {url}.")
        return data
