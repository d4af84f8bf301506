"""The orders app: reads its API key from Kustos with the unchanged AWS SDK for Python.

No Kustos code and no static key: boto3 finds everything in the environment the
pod-credentials webhook set (AWS_CONTAINER_CREDENTIALS_FULL_URI and its token file, the
endpoint, the CA bundle, the region). It logs a fingerprint of what it read, never the value.
"""

import hashlib
import json
import os
import time

import boto3
from botocore.exceptions import ClientError

SECRET_ID = os.environ.get("SECRET_ID", "prod/orders/api-key")
client = boto3.client("secretsmanager")
seen = None
while True:
    try:
        value = client.get_secret_value(SecretId=SECRET_ID)["SecretString"]
    except ClientError as e:
        error = e.response["Error"]
        status = e.response["ResponseMetadata"].get("HTTPStatusCode")
        print(f"orders-reader: {SECRET_ID}: {error['Code']} (HTTP {status})", flush=True)
    else:
        # A JSON secret (as generated ones are): a fingerprint of each key's value.
        try:
            fields = json.loads(value)
        except ValueError:
            fields = {"value": value}
        if not isinstance(fields, dict):
            fields = {"value": value}
        fingerprint = ", ".join(
            f"{key} sha256 {hashlib.sha256(str(item).encode()).hexdigest()[:12]}"
            for key, item in sorted(fields.items()))
        if fingerprint != seen:
            print(f"orders-reader: read {SECRET_ID} ({fingerprint})", flush=True)
            seen = fingerprint
    time.sleep(float(os.environ.get("INTERVAL_SECONDS", "10")))
