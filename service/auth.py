"""API keys per calling system, with scopes.

Keys live only with their holders; the keys file holds their SHA-256 hashes (a key is 32
random bytes, so an unsalted hash is safe to keep), their scopes and optionally their own
rate limit. `nba issue-key` adds a key and prints it once. A presented key is hashed and
compared with every stored hash in constant time; an authenticated request then takes a
token from its key's bucket (`service.ratelimit`) or is refused with 429.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from fastapi import Depends, Request, Security, params
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.errors import (
    ConfigurationError,
    ForbiddenError,
    RateLimitedError,
    UnauthenticatedError,
)
from service.ratelimit import RateLimiter
from service.vocabulary import Scope

KEY_PREFIX = "nba_"
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key, as stored in the keys file."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One calling system's key: its name, what it may do, the hash of the key, and its own
    requests per second (None: the service's `rate_limit_per_second`)."""

    name: str
    scopes: frozenset[Scope]
    sha256: str
    rate_per_second: float | None = None


@dataclass(frozen=True)
class ApiKeys:
    """The keys the service accepts; with none configured, authentication is off."""

    keys: tuple[ApiKey, ...]
    enabled: bool

    @classmethod
    def load(cls, path: Path | None) -> ApiKeys:
        """Read the keys file; None turns authentication off (local demo)."""
        if path is None:
            return cls((), enabled=False)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
            keys = tuple(
                ApiKey(
                    name=str(entry["name"]),
                    scopes=frozenset(Scope(s) for s in entry["scopes"]),
                    sha256=str(entry["sha256"]),
                    rate_per_second=_rate(entry.get("rate_per_second")),
                )
                for entry in raw.get("keys", [])
            )
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the API keys file {path}: {exc}") from exc
        return cls(keys, enabled=True)

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key whose hash matches; every stored hash is compared, in constant time."""
        digest = hash_key(presented)
        found = None
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found


def _rate(value: object) -> float | None:
    """A key's own requests per second: a number above 0, or None when not set."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"rate_per_second must be a number above 0, got {value!r}")
    return float(value)


def issue_key(
    path: Path, name: str, scopes: Iterable[Scope], rate_per_second: float | None = None
) -> str:
    """Create a key for `name`, store its hash, scopes and own rate limit (if given) in `path`
    (mode 0600), return it."""
    scopes = sorted({Scope(s) for s in scopes})
    if not scopes:
        raise ConfigurationError("a key needs at least one scope")
    try:
        rate = _rate(rate_per_second)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    raw = yaml.safe_load(path.read_text()) if path.exists() else None
    entries = list((raw or {}).get("keys", []))
    if any(entry["name"] == name for entry in entries):
        raise ConfigurationError(f"a key named '{name}' exists already in {path}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    entry: dict[str, object] = {
        "name": name,
        "scopes": [s.value for s in scopes],
        "sha256": hash_key(key),
    }
    if rate is not None:
        entry["rate_per_second"] = rate
    entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(".tmp")
    scratch.write_text(yaml.safe_dump({"keys": entries}, sort_keys=False))
    os.chmod(scratch, 0o600)
    scratch.replace(path)
    return key


def _basic_password(request: Request) -> str | None:
    """The password of HTTP Basic credentials (how a browser sends a key to the pages)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value, validate=True).decode().partition(":")[2] or None
    except (binascii.Error, UnicodeDecodeError):
        return None


def presented_key(request: Request) -> str | None:
    """The key a request presents: `X-API-Key`, else an `Authorization: Bearer` token, else
    the password of HTTP Basic credentials (browsers, for the pages)."""
    api_key = request.headers.get("x-api-key")
    if api_key:
        return api_key
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    return _basic_password(request)


def authorise(request: Request, scope: Scope) -> None:
    """Let the request through only if it presents a key holding `scope` (nothing to check
    with authentication off); raises 401, 403 or 429 errors otherwise.

    The caller's name is kept for the access log. Each authenticated request takes a token of
    its key's bucket in this worker (429 when empty).
    """
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled:
        return
    presented = presented_key(request)
    if not presented:
        raise UnauthenticatedError("an API key is required (X-API-Key or Authorization)")
    key = keys.authenticate(presented)
    if key is None:
        raise UnauthenticatedError("the API key is not valid", code="api_key_invalid")
    request.state.caller = key.name
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    wait = limiter.acquire(key.name, key.rate_per_second) if limiter else 0
    if wait:
        raise RateLimitedError(
            f"the key '{key.name}' sent more requests than its rate allows; retry in {wait} s",
            retry_after=wait,
        )
    if scope not in key.scopes:
        raise ForbiddenError(f"the key '{key.name}' does not have the '{scope}' scope")


def require(scope: Scope) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: `authorise(request, scope)`. The key's header and bearer token
    are declared as security parameters for the OpenAPI document."""

    async def check(
        request: Request,
        _api_key: Annotated[str | None, Security(_api_key_header)],
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> None:
        authorise(request, scope)

    return check


def scoped(scope: Scope) -> list[params.Depends]:
    """Route dependencies that require `scope`."""
    return [Depends(require(scope))]
