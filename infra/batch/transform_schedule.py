"""BatchTransformSchedule: a scheduled SageMaker batch transform over the day's JSON Lines input.

EventBridge Scheduler starts a Step Functions state machine (JSONata) on the stage's cron; the state
machine resolves the run's dated prefixes, skips a day without input (recording why), runs one
transform job (.sync) on the stage's model, writes a manifest through a small Lambda, and on any
failure notifies an SNS topic, which a CloudWatch alarm on failed, timed-out or aborted executions
also feeds.

This module composes the parts, each in its own module of this package: `schedule` (the scheduler,
its role, its dead-letter queue), `state_machine` (the states, the role, the log group), `manifest`
(the Lambda), `failures` (the topic and the alarm) and `expressions` (the JSONata that names jobs and
dates runs, with Python twins). Every part creates its resources in this construct, so their
CloudFormation logical IDs are those of one construct.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.batch.expressions import check_attempts, job_name_prefix
from infra.batch.failures import failed_runs_alarm, failure_topic
from infra.batch.manifest import manifest_function
from infra.batch.schedule import run_schedule
from infra.batch.state_machine import state_machine
from infra.config.batch import BatchSettings
from infra.operations.key_policies import allow_cloudwatch_alarms, allow_cloudwatch_logs

LOG_RETENTION = logs.RetentionDays.ONE_YEAR


class BatchTransformSchedule(Construct):
    """Creates the scheduled batch transform of one stage:

    - an EventBridge Scheduler schedule (cron and time zone from `settings`, retry policy, a KMS-encrypted
      SQS dead-letter queue) with its own role: StartExecution on this state machine, SendMessage to the queue;
    - a standard Step Functions state machine (JSONata; logs at level ALL without execution data, to a
      KMS-encrypted log group; X-Ray; 24 h timeout) with its own least-privilege role (no
      AmazonSageMakerFullAccess): transform jobs named sagebert-<stage>-*, the input prefix, the output prefix,
      the topic, the manifest function, a grant on the stage key for the job's volume (VolumeKmsKeyId);
    - the manifest Lambda (lambdas/batch_manifest; Python 3.14, arm64, Powertools layer, X-Ray) that counts
      input and output records and writes `_manifest.json`, failing the run when the counts differ;
    - a KMS-encrypted SNS topic (TLS only) for failures, optionally with an email subscription, and a
      CloudWatch alarm on failed, timed-out or aborted executions that notifies it.

    The transform job runs as the model's execution role, which must be allowed to read the input prefix and
    write the output prefix (`HuggingFaceModel.grant_batch_io`).

    Exposes `state_machine`, `topic`, `schedule`, `alarm`, `dead_letter_queue`, `manifest_function`,
    `input_uri` and `output_uri` (s3:// prefixes).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: BatchSettings,
        stage_name: str,
        model_name: str,
        bucket: s3.IBucket,
        key: kms.IKey,
        lambda_code: Path,
    ) -> None:
        super().__init__(scope, id_)
        self.job_name_prefix = job_name_prefix(stage_name)
        check_attempts(settings.capacity_retries)
        allow_cloudwatch_logs(key)
        allow_cloudwatch_alarms(key)
        self.input_uri: str = f"s3://{bucket.bucket_name}/{settings.input_prefix}"
        self.output_uri: str = f"s3://{bucket.bucket_name}/{settings.output_prefix}"
        # The order below is the order of the resources in the template.
        self.topic = failure_topic(self, alarm_email=settings.alarm_email, key=key)
        self.manifest_function = manifest_function(
            self, settings=settings, bucket=bucket, key=key, retention=LOG_RETENTION, code=lambda_code
        )
        self.state_machine = state_machine(
            self,
            settings=settings,
            model_name=model_name,
            job_name_prefix=self.job_name_prefix,
            bucket=bucket,
            key=key,
            topic=self.topic,
            manifest_function=self.manifest_function,
            retention=LOG_RETENTION,
        )
        self.alarm = failed_runs_alarm(self, state_machine=self.state_machine, topic=self.topic)
        runs = run_schedule(self, settings=settings, state_machine=self.state_machine, key=key)
        self.schedule = runs.schedule
        self.dead_letter_queue = runs.dead_letter_queue
