"""Fetch credentials the way boto3 and the AWS CLI do: botocore's ContainerProvider.

Reads AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE from the
environment; prints one JSON line: the credentials' public parts, or the error botocore raised,
and in both cases how many times botocore slept between attempts ("sleeps": it sleeps after
every failed attempt, the last one included).

Test knobs (test/helpers/botocore.ts sets them; nothing else of botocore is changed):
- botocore's 1 s sleep between its 3 attempts returns at once; with BOTOCORE_SLEEP_GATE=<path> it
  waits instead until that file exists, so a test can change the world between two attempts
  when an outcome says so, without timing anything.
- BOTOCORE_TIMEOUT_SECONDS replaces ContainerMetadataFetcher.TIMEOUT_SECONDS (2 s in 1.43).
"""
import json
import os
import sys
import time

from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher

sleeps = 0


def sleep(_seconds):
    global sleeps
    sleeps += 1
    gate = os.environ.get("BOTOCORE_SLEEP_GATE")
    if gate:
        deadline = time.monotonic() + 15
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)


class Fetcher(ContainerMetadataFetcher):
    if os.environ.get("BOTOCORE_TIMEOUT_SECONDS"):
        TIMEOUT_SECONDS = float(os.environ["BOTOCORE_TIMEOUT_SECONDS"])


try:
    provider = ContainerProvider(fetcher=Fetcher(sleep=sleep))
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
        "sleeps": sleeps,
    }))
except Exception as e:  # the test asserts on the class and message botocore raises
    print(json.dumps({"error": type(e).__name__, "message": str(e), "sleeps": sleeps}))
    sys.exit(1)
