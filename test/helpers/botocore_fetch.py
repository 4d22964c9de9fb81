"""Fetch credentials the way boto3 and the AWS CLI do: botocore's ContainerProvider.

Reads AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE from the
environment; prints one JSON line: the credentials' public parts, or the error botocore raised.
"""
import json
import sys

from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher

try:
    # Tests shorten botocore's 1 s sleep between its 3 attempts; nothing else is changed.
    fetcher = ContainerMetadataFetcher(sleep=lambda _s: None)
    provider = ContainerProvider(fetcher=fetcher)
    creds = provider.load()
    if creds is None:
        print(json.dumps({"error": "NoCredentials", "message": "provider returned None"}))
        sys.exit(1)
    frozen = creds.get_frozen_credentials()
    print(json.dumps({
        "method": creds.method,
        "access_key": frozen.access_key,
        "secret_len": len(frozen.secret_key),
        "token_len": len(frozen.token or ""),
        "expiry": creds._expiry_time.isoformat() if getattr(creds, "_expiry_time", None) else None,
        "account_id": getattr(frozen, "account_id", None),
    }))
except Exception as e:  # the test asserts on the class and message botocore raises
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
    sys.exit(1)
