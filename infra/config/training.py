"""The `training:` section: a SageMaker training job for model_code/train.py (`python -m sagebert train --remote`).

Nothing is deployed from it: sagebert/release/remote_training.py launches the job on demand with these
settings.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from infra.catalog import sagemaker_api as api
from infra.config.base import KMS_KEY_ARN, ROLE_ARN, Strict

# An S3 URI of a bucket and an optional key prefix.
S3_PREFIX = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"


class TrainingSettings(Strict):
    """A SageMaker training job for model_code/train.py (`python -m sagebert train --remote`).

    Not a CDK resource: a training job is launched on demand, not deployed.
    """

    role_arn: str = Field(
        description="IAM role the training job runs as (SageMaker execution role).",
        pattern=ROLE_ARN,
    )
    input_path: str = Field(
        description="S3 prefix holding the channels as folders: train/, validation/ and (optional) test/, "
        "each with one CSV or JSON Lines file.",
        pattern=S3_PREFIX,
    )
    output_path: str = Field(
        description="S3 prefix for the job's model.tar.gz and output.tar.gz (metrics.json).",
        pattern=S3_PREFIX,
    )
    base_model: str = Field(
        "bundled",
        pattern=r"^(bundled|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*)$",
        description="Base encoder, mounted as the job's model channel: `bundled` (sagebert uploads the bundled "
        "all-MiniLM-L6-v2 under output_path) or an s3:// prefix holding a Hugging Face model folder.",
    )
    instance_type: str = Field(
        "ml.g4dn.xlarge",
        pattern=r"^ml\.(g4dn|g5|g6|p3|p4d|p5)\.[a-z0-9]+$",
        description="Training instance type. The Hugging Face training images are GPU-only.",
    )
    instance_count: int = Field(1, ge=1, le=1, description="Instances; train.py runs on one (no distribution).")
    volume_size_gb: int = Field(
        30,
        # The API model sets no maximum; EBS volumes end at 16 TiB.
        ge=1,
        le=16384,
        description="EBS volume per instance (GB).",
    )
    max_run_minutes: int = Field(60, ge=1, le=7 * 24 * 60, description="Stop the job after this long.")
    kms_key_arn: str | None = Field(
        None,
        pattern=KMS_KEY_ARN,
        description="KMS key for the output and the training volume (default: AWS managed keys).",
    )
    transformers_version: str = Field("4.49.0", description="Hugging Face training image: transformers version.")
    pytorch_version: str = Field("2.5.1", description="Hugging Face training image: PyTorch version.")
    py_version: str = Field("py311", description="Hugging Face training image: Python version.")
    hyperparameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Extra train.py arguments, e.g. {epochs: 4, learning-rate: 5e-5}.",
    )

    @field_validator("instance_type")
    @classmethod
    def _training_type(cls, instance_type: str) -> str:
        api.check_instance_type("training.instance_type", instance_type, "TrainingInstanceType")
        return instance_type
