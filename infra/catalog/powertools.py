"""The Powertools for AWS Lambda (Python) layer the Lambda functions use: version, SSM parameter, regions.

Plain data (no CDK), so the config schema can check a stage's region against it.
"""

from __future__ import annotations

# Powertools for AWS Lambda comes from AWS's public layer (all extras: pydantic, aws-xray-sdk), looked
# up at deploy time from its public SSM parameter. The same version is pinned for local tests
# (aws-lambda-powertools in requirements/lock.txt); a unit test keeps the two equal.
# https://docs.aws.amazon.com/powertools/python/latest/getting-started/lambda-layers/
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/arm64/python3.14/{POWERTOOLS_VERSION}"

# Regions where Powertools for AWS Lambda (Python) publishes its layers' public SSM parameters
# (/aws/service/powertools/python/<arch>/<python>/<version>): the regions its release workflow writes them to
# (aws-powertools/powertools-lambda-python, .github/workflows/update_ssm.yml). `python -m sagebert preflight`
# checks the parameter itself in the target region.
POWERTOOLS_REGIONS = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)
