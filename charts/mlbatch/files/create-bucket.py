"""Create the bucket unless it exists, waiting for the S3 server to come up.

Run by the chart's post-install/post-upgrade hook Job in the controller image (boto3);
the endpoint, region and bucket come from the settings ConfigMap, keys from the
environment (Secret or workload identity), as for every mlbatch pod.
"""

import os
import sys
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

bucket = os.environ["MLBATCH_BUCKET"]
region = os.environ.get("AWS_REGION", "us-east-1")
s3 = boto3.client("s3")
deadline = time.monotonic() + float(os.environ.get("MLBATCH_BUCKET_WAIT_S", "240"))
while True:
    try:
        s3.head_bucket(Bucket=bucket)
        print(f"bucket {bucket} exists")
        break
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500 and time.monotonic() < deadline:  # server still starting
            print(f"waiting for S3: {error}", flush=True)
            time.sleep(3)
            continue
        if status != 404:
            sys.exit(f"bucket {bucket}: {error}")
        options = {}
        if region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(Bucket=bucket, **options)
        except ClientError as create_error:
            code = create_error.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                sys.exit(f"cannot create bucket {bucket}: {create_error}")
        print(f"bucket {bucket} created")
        break
    except BotoCoreError as error:  # server not up yet: connection refused, DNS, timeout
        if time.monotonic() > deadline:
            sys.exit(f"S3 endpoint not reachable: {error}")
        print(f"waiting for S3: {error}", flush=True)
        time.sleep(3)
