"""What every sagebert Lambda function shares (the front door and the batch manifest step): the runtime, what
each code asset leaves out, and the Powertools for AWS Lambda layer with the rule that the stage's region
publishes it."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.catalog.powertools import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_REGIONS
from infra.catalog.regions import require_region

RUNTIME = lambda_.Runtime.PYTHON_3_14
# lambdas/ is the code root of every function; each one's asset also leaves out the other functions' packages.
ASSET_EXCLUDE = ("**/__pycache__", "**/*.pyc", "README.md", "**/.mypy_cache", "**/.pytest_cache")


def powertools_layer(scope: Construct) -> lambda_.ILayerVersion:
    """AWS's public Powertools layer, looked up at deploy time from its SSM parameter, created in `scope`
    (id Powertools); an environment-agnostic stack's region rule (SupportedRegion) then refuses a region without
    the parameter."""
    layer = lambda_.LayerVersion.from_layer_version_arn(
        scope,
        "Powertools",
        ssm.StringParameter.value_for_string_parameter(scope, POWERTOOLS_LAYER_PARAMETER),
    )
    require_region(
        scope,
        "SupportedRegionPowertools",
        POWERTOOLS_REGIONS,
        f"the Powertools layer's SSM parameter {POWERTOOLS_LAYER_PARAMETER}",
    )
    return layer
