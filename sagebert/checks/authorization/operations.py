"""The botocore operations sagebert's code makes, classified: deployed code's, with the IAM actions each needs
(`RUNTIME_OPERATIONS`), the request parameters that bring in another resource type (`PARAMETER_RESOURCE_TYPES`,
`MODELED_PARAMETERS`), and the developer CLI's own (`DEVELOPER_OPERATIONS`).

tests/call_recorder.py records every operation the tests make and fails on one these tables do not classify, so
the gate's declared calls follow the code rather than a hand list that drifts from it.
"""

from __future__ import annotations

# Resource types an action is authorized against only when the request carries a parameter: the Service
# Authorization data lists both types of InvokeEndpoint; the inference component's is checked when the call names
# one (InferenceComponentName). https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html
PARAMETER_RESOURCE_TYPES: dict[tuple[str, str], str] = {
    ("sagemaker:InvokeEndpoint", "inference-component"): "InferenceComponentName",
    ("sagemaker:InvokeEndpointAsync", "inference-component"): "InferenceComponentName",
}

# The botocore operations the deployed code makes, by code root, and the IAM actions each needs (S3 on SSE-KMS
# objects: Decrypt to read, GenerateDataKey to write; https://docs.aws.amazon.com/AmazonS3/latest/userguide/
# UsingKMSEncryption.html). tests/call_recorder.py fails on a recorded operation of deployed code missing here; the
# gate derives the front door's and the manifest function's calls from these entries.
RUNTIME_OPERATIONS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("lambdas/front_door", "sagemaker-runtime", "InvokeEndpoint"): ("sagemaker:InvokeEndpoint",),
    ("lambdas/batch_manifest", "s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("lambdas/batch_manifest", "s3", "GetObject"): ("s3:GetObject", "kms:Decrypt"),
    ("lambdas/batch_manifest", "s3", "PutObject"): ("s3:PutObject", "kms:GenerateDataKey"),
    # The promotion pipeline's smoke test (python -m sagebert smoke in CodeBuild): it assumes the stage's smoke
    # role, reads the API key (api_key stages) and POSTs a signed request (execute-api:Invoke, no botocore call).
    ("sagebert/local/smoke.py", "sts", "AssumeRole"): ("sts:AssumeRole",),
    ("sagebert/local/smoke.py", "apigateway", "GetApiKey"): ("apigateway:GET",),
    # The pipeline's synth step resolves the latest Approved registry version (python -m sagebert resolve-models).
    ("sagebert/release/registry.py", "sagemaker", "ListModelPackages"): ("sagemaker:ListModelPackages",),
    ("sagebert/release/registry.py", "sagemaker", "DescribeModelPackage"): ("sagemaker:DescribeModelPackage",),
}

# The request parameters of deployed code's operations that bring in a resource type, and that the gate's calls
# model (_front_door checks the component's ARN when SAGEBERT_INFERENCE_COMPONENT is set).
MODELED_PARAMETERS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("lambdas/front_door", "sagemaker-runtime", "InvokeEndpoint"): ("InferenceComponentName",),
}

# Operations the developer CLI makes with the developer's own credentials (register, preflight, remote training,
# packaging): no deployed principal makes them, so no synthesized policy has to allow them. Listed so that a new
# operation is classified on purpose, never dropped.
DEVELOPER_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("s3", "GetBucketEncryption"),
        ("s3", "PutObject"),
        ("s3", "HeadObject"),
        ("s3", "GetObject"),
        ("s3", "ListObjectsV2"),
        ("s3", "HeadBucket"),
        ("s3", "CreateMultipartUpload"),
        ("s3", "UploadPart"),
        ("s3", "CompleteMultipartUpload"),
        ("sagemaker", "CreateModelPackage"),
        ("sagemaker", "DescribeModelPackageGroup"),
        ("sagemaker", "ListModelPackages"),
        ("sagemaker", "DescribeModelPackage"),
        ("sagemaker", "UpdateModelPackage"),
        ("sagemaker", "CreateTrainingJob"),
        ("sagemaker", "DescribeTrainingJob"),
        ("sagemaker", "DescribeEndpoint"),
        ("sagemaker", "DescribeEndpointConfig"),
        ("sagemaker", "DescribeInferenceComponent"),
        ("sagemaker", "ListInferenceComponents"),
        ("sagemaker-runtime", "InvokeEndpoint"),
        ("cloudformation", "DescribeStacks"),
        ("cloudformation", "GetTemplate"),
        ("sts", "GetCallerIdentity"),
        ("sts", "AssumeRole"),
        ("apigateway", "GetApiKey"),
        ("iam", "GetRole"),
        ("service-quotas", "GetServiceQuota"),
        ("service-quotas", "ListServiceQuotas"),
        ("ecr", "DescribeImages"),
        ("ecr", "BatchGetImage"),
        ("lambda", "GetAccountSettings"),
        ("ssm", "GetParameter"),
    }
)
