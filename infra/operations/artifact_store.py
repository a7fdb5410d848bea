"""ArtifactStore: the stage's stateful part, a KMS key and an encrypted, logged artifact bucket."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.operations.compliance import acknowledge, quiet_cfn_lint_on_cdk_provider

_NO_REPLICATION_LOGS = (
    "Access logs are an audit trail for this region's artifact bucket (the stage's or the pipeline's); "
    "versioning and retention protect them, and replicating them to another region adds cost without a "
    "recovery use."
)
_NO_REPLICATION_ARTIFACTS = (
    "Single-region by design: the bucket holds release artifacts that the release path can rebuild "
    "and per-run batch data; versioning protects them, and cross-region replication would double "
    "storage cost for no recovery gain."
)


# Days S3 keeps a version after it stopped being current (an overwritten or expired object), and days before an
# unfinished multipart upload's parts are removed.
NONCURRENT_VERSION_DAYS = 30
INCOMPLETE_UPLOAD_DAYS = 7
ACCESS_LOG_DAYS = 365


@dataclass(frozen=True)
class GuardedPrefix:
    """A key prefix only some IAM roles may read or write: those matching `role_arn_patterns` (ArnLike on
    aws:PrincipalArn, e.g. every role under a path, arn:aws:iam::<account>:role/sagebert/dev/serving/*)."""

    prefix: str
    role_arn_patterns: tuple[str, ...]


class ArtifactStore(Construct):
    """Creates a customer-managed KMS key (yearly rotation), an artifact bucket encrypted with it
    (public access blocked, TLS only, versioned, server access logs; data prefixes expire as configured, old
    versions after 30 days; guarded prefixes readable and writable by their roles only) and the access-log
    bucket. With `retain=False` both buckets are emptied (every version) when the stack is deleted, so it
    deletes cleanly.

    Exposes `key` (for endpoint volumes and later data capture / batch output) and `bucket`.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        retain: bool,
        expiring_prefixes: Mapping[str, int] | None = None,
        guarded_prefixes: Sequence[GuardedPrefix] = (),
    ) -> None:
        """`expiring_prefixes`: key prefix -> days after which objects under it expire. `guarded_prefixes`: prefixes
        whose objects only the named roles may get or put (a Deny for everyone else in the bucket policy)."""
        super().__init__(scope, id_)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        # S3 deletes only empty buckets, and these are versioned: without removing every object version first,
        # `cdk destroy` of a stage whose data goes with it ends in DELETE_FAILED. CDK's auto-delete custom resource
        # empties them on stack deletion (never on update).
        # https://docs.aws.amazon.com/AmazonS3/latest/userguide/delete-bucket.html

        self.key = kms.Key(
            self,
            "Key",
            description="sagebert: model artifacts, endpoint volumes, batch data",
            enable_key_rotation=True,
            removal_policy=removal,
            pending_window=Duration.days(30),
        )
        self.access_logs = access_log_bucket(self, "AccessLogs", removal)
        self.bucket = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,  # fewer KMS calls for many small batch objects
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="OldVersionsAndUploads",
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(INCOMPLETE_UPLOAD_DAYS),
                    expired_object_delete_marker=True,
                ),
                *(
                    s3.LifecycleRule(
                        id=f"Expire-{prefix.rstrip('/').replace('/', '-')}",
                        prefix=prefix,
                        expiration=Duration.days(days),
                    )
                    for prefix, days in sorted((expiring_prefixes or {}).items())
                ),
            ],
            removal_policy=removal,
            auto_delete_objects=not retain,
        )
        for guarded in guarded_prefixes:
            # Identity policies elsewhere in the account cannot widen this: an explicit Deny wins. Deleting is not
            # denied, so lifecycle expiry and (where data goes with the stack) CDK's emptying still work.
            self.bucket.add_to_resource_policy(
                iam.PolicyStatement(
                    # A Sid holds letters and digits only.
                    sid="Only" + re.sub(r"[^A-Za-z0-9]", "", guarded.prefix.title()) + "Roles",
                    effect=iam.Effect.DENY,
                    principals=[iam.AnyPrincipal()],
                    actions=["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                    resources=[self.bucket.arn_for_objects(f"{guarded.prefix}*")],
                    conditions={"ArnNotLike": {"aws:PrincipalArn": list(guarded.role_arn_patterns)}},
                )
            )
        acknowledge(self.bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", _NO_REPLICATION_ARTIFACTS)
        if not retain:
            quiet_cfn_lint_on_cdk_provider(Stack.of(self), "Custom::S3AutoDeleteObjectsCustomResourceProvider")


def access_log_bucket(scope: Construct, id_: str, removal: RemovalPolicy) -> s3.Bucket:
    """A bucket for S3 server access logs: SSE-S3 (the only encryption log delivery accepts,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html), private, TLS only,
    versioned; logs expire after a year and their old versions 30 days later."""
    bucket = s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        lifecycle_rules=[
            s3.LifecycleRule(
                expiration=Duration.days(ACCESS_LOG_DAYS),
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
            )
        ],
        removal_policy=removal,
        auto_delete_objects=removal == RemovalPolicy.DESTROY,
    )
    acknowledge(
        bucket,
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "S3 server access logs are delivered only to buckets with SSE-S3 default encryption.",
    )
    acknowledge(bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", _NO_REPLICATION_LOGS)
    return bucket
