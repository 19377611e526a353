"""The input rule of an end user's signing key, applied by the API's SigningKeyInput before the service runs."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.exceptions import ApplicationError

from .models import EndUserSigningKey

MIN_HS256_SECRET = 32
MIN_RSA_BITS = 2048
MAX_SIGNING_KEY_LENGTH = 16_384


def key_material_clean(*, algorithm: str, key: str) -> str:
    """An HS256 secret long enough, or an RSA public key (PEM, never the private one) of enough bits."""
    if algorithm == EndUserSigningKey.Algorithm.HS256:
        if len(key) < MIN_HS256_SECRET:
            raise ApplicationError(
                "invalid_input", f"An HS256 secret needs at least {MIN_HS256_SECRET} characters.", {"field": "key"}
            )
        return key
    try:
        public = serialization.load_pem_public_key(key.strip().encode())
    except (ValueError, TypeError):
        raise ApplicationError(
            "invalid_input", "An RS256 key must be an RSA public key in PEM form (never the private key).", {"field": "key"}
        ) from None
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
        raise ApplicationError(
            "invalid_input", f"An RS256 key must be an RSA key of {MIN_RSA_BITS} bits or more.", {"field": "key"}
        )
    return key.strip()
