"""`kustos.client`: a Python client for the Kustos Secrets Manager API, with a cache.

`connect()` builds botocore's own ``secretsmanager`` client against a Kustos endpoint
(ServiceAccount bearer token, access keys, or the AWS credential chain including the
container-credentials provider). `SecretCache` keeps values in process memory with a TTL,
an LRU bound and serve-stale-on-error. Depends only on botocore and `kustos.models`.

    from kustos.client import SecretCache, connect
    cache = SecretCache(connect("https://kustos-api.kustos-system.svc:8443",
                                ca_bundle="/etc/kustos/ca.crt",
                                token_file="/var/run/secrets/kustos/token"))
    password = cache.get_secret_string("prod/db")
"""

from kustos.client.cache import CachedSecret, SecretCache, SecretCacheConfig, is_transient
from kustos.client.session import DEFAULT_ENDPOINT, BearerToken, connect, default_endpoint

__all__ = [
    "DEFAULT_ENDPOINT",
    "BearerToken",
    "CachedSecret",
    "SecretCache",
    "SecretCacheConfig",
    "connect",
    "default_endpoint",
    "is_transient",
]
