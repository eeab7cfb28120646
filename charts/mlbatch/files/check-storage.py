"""`helm test`: the bucket is reachable with the pods' credentials and honours the
conditional put that commits manifests (If-None-Match: *), then cleans up."""

import os
import sys
import uuid

import boto3
from botocore.exceptions import ClientError

bucket = os.environ["MLBATCH_BUCKET"]
key = f"_helm-test/{uuid.uuid4().hex}"
s3 = boto3.client("s3")
s3.head_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key=key, Body=b"first", IfNoneMatch="*")
try:
    s3.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")
except ClientError as error:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status != 412:
        sys.exit(f"second conditional put: expected 412, got {status}: {error}")
else:
    s3.delete_object(Bucket=bucket, Key=key)
    sys.exit("the S3 server ignored If-None-Match: * (manifest commits would not be safe)")
body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
s3.delete_object(Bucket=bucket, Key=key)
if body != b"first":
    sys.exit(f"the losing conditional put overwrote the object: {body!r}")
print(f"s3://{bucket}: reachable, conditional puts honoured")
