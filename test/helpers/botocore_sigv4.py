"""botocore as an independent SigV4 implementation for the agent's EKS Auth calls.

Reads one JSON job on stdin and prints one JSON line. Tests pass made-up keys only; even so no
secret key is printed, and the pod credentials botocore parses are reported by length (the
canonical request of mode "sign" does carry the x-amz-security-token value, as SigV4 signs it).

mode "call": botocore's own eks-auth client (its service model, rest-json serializer, SigV4Auth
  signer and response parser) calls assume_role_for_pod_identity at endpoint_url.
  Job: endpoint_url, region, access_key, secret_key, session_token (or null), cluster_name, token.
  Prints the fields botocore parsed, or the ClientError's code, status and message; plus what
  botocore sent (method, url, the Authorization header, and the signed header names).

mode "sign": re-signs a request another client sent, with botocore.auth.SigV4Auth at that
  client's instant. Job: method, url, headers (the ones that client signed, without authorization,
  x-amz-date and x-amz-security-token: SigV4Auth sets those), body_b64, service, region,
  access_key, secret_key, session_token (or null), amz_date (YYYYMMDDTHHMMSSZ).
  Prints the Authorization header botocore computed, its canonical request and string to sign,
  the host it derives from the URL and the payload hash it computes itself.
"""
import base64
import datetime
import json
import sys
from unittest import mock

import botocore.auth
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def authorization_parts(value):
    """{'credential': ..., 'signed_headers': [...], 'signature': ...} of an Authorization value."""
    if not value:
        return None
    _, _, params = value.partition(' ')
    parts = dict(p.strip().split('=', 1) for p in params.split(','))
    return {
        'credential': parts.get('Credential'),
        'signed_headers': parts.get('SignedHeaders', '').split(';'),
        'signature': parts.get('Signature'),
    }


def call(job):
    session = botocore.session.get_session()
    client = session.create_client(
        'eks-auth',
        region_name=job['region'],
        endpoint_url=job['endpoint_url'],
        aws_access_key_id=job['access_key'],
        aws_secret_access_key=job['secret_key'],
        aws_session_token=job.get('session_token'),
        # One attempt: a refused signature must surface as it is, not be retried.
        config=Config(retries={'max_attempts': 1, 'mode': 'standard'},
                      connect_timeout=5, read_timeout=5),
    )
    sent = {}

    def before_send(request, **_kwargs):
        auth = request.headers.get('Authorization')
        auth = auth.decode() if isinstance(auth, bytes) else auth
        sent.update({
            'method': request.method,
            'url': request.url,
            'authorization': auth,
            'authorization_parts': authorization_parts(auth),
            'has_security_token': 'X-Amz-Security-Token' in request.headers,
        })
        return None  # go on and send it

    client.meta.events.register('before-send.*', before_send)
    try:
        resp = client.assume_role_for_pod_identity(
            clusterName=job['cluster_name'], token=job['token'])
    except ClientError as e:
        err = e.response.get('Error', {})
        return {
            'ok': False,
            'error': 'ClientError',
            'code': err.get('Code'),
            'message': err.get('Message'),
            'status': e.response.get('ResponseMetadata', {}).get('HTTPStatusCode'),
            'sent': sent,
        }
    creds = resp['credentials']
    exp = creds['expiration']
    return {
        'ok': True,
        'status': resp['ResponseMetadata']['HTTPStatusCode'],
        'access_key_id': creds['accessKeyId'],
        'secret_len': len(creds['secretAccessKey']),
        'session_token_len': len(creds['sessionToken']),
        'expiration_type': type(exp).__module__ + '.' + type(exp).__qualname__,
        'expiration_utc_offset_s': (
            exp.utcoffset().total_seconds() if exp.utcoffset() is not None else None),
        'expiration_epoch': exp.timestamp(),
        'assumed_role_arn': resp['assumedRoleUser']['arn'],
        'assume_role_id': resp['assumedRoleUser']['assumeRoleId'],
        'association_id': resp['podIdentityAssociation']['associationId'],
        'association_arn': resp['podIdentityAssociation']['associationArn'],
        'subject': resp['subject'],
        'audience': resp['audience'],
        'sent': sent,
    }


class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth unchanged, but keeps the canonical request and string to sign it computed."""

    canonical = None
    sts = None

    def string_to_sign(self, request, canonical_request):
        self.canonical = canonical_request
        self.sts = super().string_to_sign(request, canonical_request)
        return self.sts


def sign(job):
    # SigV4Auth.add_auth reads the time once, as `datetime_now = get_current_datetime()`, a name
    # botocore/auth.py imports from botocore.compat (a naive UTC datetime; add_auth formats it with
    # SIGV4_TIMESTAMP). Patching that name in botocore.auth pins the signing instant.
    pinned = datetime.datetime.strptime(job['amz_date'], botocore.auth.SIGV4_TIMESTAMP)
    body = base64.b64decode(job['body_b64'])
    request = AWSRequest(method=job['method'], url=job['url'], headers=job['headers'], data=body)
    creds = Credentials(job['access_key'], job['secret_key'], job.get('session_token'))
    signer = RecordingSigV4Auth(creds, job['service'], job['region'])
    with mock.patch.object(botocore.auth, 'get_current_datetime', return_value=pinned) as clock:
        signer.add_auth(request)
    auth = request.headers['Authorization']
    return {
        'ok': True,
        'clock_reads': clock.call_count,
        'authorization': auth,
        'authorization_parts': authorization_parts(auth),
        'x_amz_date': request.headers.get('X-Amz-Date'),
        'has_security_token': 'X-Amz-Security-Token' in request.headers,
        'canonical_request': signer.canonical,
        'string_to_sign': signer.sts,
        'host_from_url': botocore.auth._host_from_url(job['url']),
        # What SigV4Auth hashes itself (used when no X-Amz-Content-SHA256 header is given).
        'payload_sha256': botocore.auth.SigV4Auth.payload(signer, AWSRequest(
            method=job['method'], url=job['url'], data=body)),
    }


def main():
    job = json.load(sys.stdin)
    try:
        out = {'call': call, 'sign': sign}[job['mode']](job)
    except Exception as e:  # the test shows the class and message
        out = {'ok': False, 'error': type(e).__name__, 'message': str(e)}
    out['botocore_version'] = botocore.__version__
    print(json.dumps(out))
    sys.exit(0 if out.get('error') in (None, 'ClientError') else 1)


if __name__ == '__main__':
    main()
