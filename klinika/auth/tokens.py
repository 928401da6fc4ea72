"""JSON Web Tokens: HS256 only, signed with the installation's secret.

The algorithm is pinned on both sides: a token whose header names ``none``, ``RS256`` or any
other algorithm is refused before its signature is looked at (RFC 8725 §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from klinika.auth.errors import Unauthenticated

ALGORITHM = "HS256"
ISSUER = "klinika"
MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says; the session row decides whether it is still valid."""

    username: str
    session_id: str
    role: str
    issued_at: int
    expires_at: int


class TokenCodec:
    """Signs and verifies session tokens with one secret (at least 32 bytes)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret needs at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "TokenCodec(secret=<hidden>)"

    def encode(self, claims: TokenClaims) -> str:
        payload = {
            "iss": ISSUER,
            "sub": claims.username,
            "jti": claims.session_id,
            "role": claims.role,
            "iat": claims.issued_at,
            "exp": claims.expires_at,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> TokenClaims:
        """Verify signature, algorithm, issuer and expiry.

        Raises
        ------
        Unauthenticated
            For any token that is not one of ours, or has expired.
        """
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise Unauthenticated("token algorithm not accepted")
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the session has expired; log in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid token") from exc
        try:
            return TokenClaims(
                username=str(payload["sub"]),
                session_id=str(payload["jti"]),
                role=str(payload.get("role", "")),
                issued_at=int(payload["iat"]),
                expires_at=int(payload["exp"]),
            )
        except (TypeError, ValueError) as exc:
            raise Unauthenticated("invalid token") from exc
