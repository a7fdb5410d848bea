"""PromotionPipeline: CDK Pipelines (CodePipeline) that promotes the stages dev -> staging -> approval -> prod.

One self-mutating pipeline in the tooling account (config/pipeline.yaml). Its synth step runs the
README's two commands, `make test` and `make synth`, on the pushed commit; the cloud assembly that
produced is what every stage deploys, so each asset (the model archive above all) is published once,
by content hash, and the same bytes reach every stage. Each stage deploys to its own account and
region (its config file must pin both); a stage listed in `approval_before` waits for a manual
approval first; after each stage with an API a smoke test calls it, and a failure stops the promotion.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsii
from aws_cdk import Annotations, Aws, CfnResource, Duration, Environment, RemovalPolicy, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codestarnotifications as notifications
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct, IValidation

from infra.config.model import RegistryModel
from infra.config.pipeline import PipelineConfig
from infra.config.stage import StageConfig
from infra.online.inference_api import PREDICT_PATH, STAGE_NAME, InferenceApi
from infra.operations.artifact_store import access_log_bucket
from infra.operations.compliance import acknowledge, nag_spelling
from infra.project_files import ProjectFiles
from infra.release.model_registry import group_arn, model_package_arn
from infra.stacks import ApiStack
from infra.stage import SageBertStage

PIPELINE_STACK = "SageBert-Pipeline"
# The commands the README gives for testing and synthesizing; the synth step runs exactly these.
SYNTH_COMMANDS = ("make test", "make synth")
# aws/codebuild/standard:7.0 (Ubuntu 22.04) is the CodeBuild image whose runtime-versions offer all
# three of what the project needs: Python 3.11 (requires-python), Node.js 20 (the CDK CLI) and Java 17
# (the local model server that `make test` starts). The install phase selects them; nothing else is
# installed by hand (`make` sets up .venv and node_modules from the lock files itself).
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
SYNTH_RUNTIMES = {"python": "3.11", "nodejs": "20", "java": "corretto17"}
SMOKE_RUNTIMES = {"python": "3.11"}
ARTIFACT_LOG_PREFIX = "pipeline-artifacts/"
# The smoke test needs only botocore and its dependencies, at the versions and with the hashes the project is tested
# with: their entries (pin and --hash lines) are cut out of requirements/lock.txt and installed hash-checked.
SMOKE_PACKAGES = ("botocore", "jmespath", "python-dateutil", "six", "urllib3")
SMOKE_INSTALL = (
    f"awk -v want='{' '.join(SMOKE_PACKAGES)}' "
    '\'BEGIN {n = split(want, w, " "); for (i = 1; i <= n; i++) k[w[i]] = 1} '
    '/^[^ #]/ {split($1, a, "=="); keep = (a[1] in k)} keep\' requirements/lock.txt > /tmp/smoke-requirements.txt'
    " && python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps "
    "-r /tmp/smoke-requirements.txt"
)


# What the synth step may do in the registry before it synthesizes: find a group's latest Approved version.
RESOLVE_ACTIONS = ("sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages")
RESOLVE_SID = "ResolveRegistryModels"
# The event SageMaker sends when a model package's approval status changes, in the group's account and region.
# https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"


def resolve_command(stage: str) -> str:
    """The synth step's command that writes the stage's registry versions to the resolved-models file (make test
    has set up .venv by then)."""
    return f".venv/bin/python -m sagebert resolve-models --stage {stage}"


def registry_groups(config: PipelineConfig, stages: dict[str, StageConfig]) -> dict[str, list[tuple[str, str]]]:
    """Promoted stage -> the (group, account) of each registry model it deploys without a pinned version (the ones
    the synth step resolves). The account is the source's group_account, else the stage's."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name in config.stages:
        stage = stages[name]
        for _, model in stage.model_sources():
            if isinstance(model, RegistryModel) and model.version is None:
                account = model.group_account or stage.account
                assert account is not None  # an enabled pipeline's stages pin their account
                if (model.group, account) not in found.setdefault(name, []):
                    found[name].append((model.group, account))
    return {name: groups for name, groups in found.items() if groups}


# An endpoint that scales to zero answers errors (503 through the front door, which the smoke test retries) until
# an instance and a model copy are back: "several minutes" per SageMaker's scale-to-zero guide
# (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html).
SCALE_FROM_ZERO_WAIT_S = 900
SCALE_FROM_ZERO_RETRY_WAIT_S = 30


def smoke_role_name(stage: str) -> str:
    """The stage account's role the smoke test assumes (named: the tooling account must know its ARN)."""
    return f"sagebert-smoke-test-{stage}"


def smoke_runner_role_name(stage: str) -> str:
    """The tooling account's CodeBuild role of a stage's smoke test (named: the stage trusts only it)."""
    return f"sagebert-pipeline-smoke-{stage}"


class SmokeTestAccess(Construct):
    """In a stage's account: the role the pipeline's smoke test assumes to call this stage's API.

    It trusts only the smoke test's CodeBuild role in the tooling account, and may do exactly what a
    caller of the API needs: with auth iam, execute-api:Invoke on `POST /v1/predict` of this API's
    stage; with auth api_key, apigateway:GET on this one key (to read its value).
    """

    def __init__(self, scope: Construct, id_: str, *, api: InferenceApi, stage: str, pipeline_account: str) -> None:
        super().__init__(scope, id_)
        runner = f"arn:{Aws.PARTITION}:iam::{pipeline_account}:role/{smoke_runner_role_name(stage)}"
        # Trusting the account with a condition on the caller's ARN (rather than the role ARN as principal)
        # survives the runner role being replaced: IAM would pin a principal ARN to the old role's id.
        self.role = iam.Role(
            self,
            "Role",
            role_name=smoke_role_name(stage),
            assumed_by=iam.AccountPrincipal(pipeline_account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": runner}}
            ),
            max_session_duration=Duration.hours(1),
            description="sagebert promotion pipeline: smoke test of this stage's API",
        )
        statements: list[iam.PolicyStatement] = []
        if api.api_key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="ReadSmokeTestApiKey", actions=["apigateway:GET"], resources=[api.api_key.key_arn]
                )
            )
        else:
            statements.append(
                iam.PolicyStatement(
                    sid="InvokePredict",
                    actions=["execute-api:Invoke"],
                    resources=[api.api.arn_for_execute_api("POST", PREDICT_PATH, STAGE_NAME)],
                )
            )
        # A customer-managed policy rather than an inline one (NIST 800-53 IAMNoInlinePolicy).
        self.policy = iam.ManagedPolicy(self, "Policy", roles=[self.role], statements=statements)


class SmokeTestStack(Stack):
    """The smoke test's access to one stage's API, deployed with that stage by the pipeline."""

    def __init__(
        self, scope: Construct, id_: str, *, api: ApiStack, stage: str, pipeline_account: str, **kwargs: Any
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.access = SmokeTestAccess(
            self, "Access", api=api.front_door, stage=stage, pipeline_account=pipeline_account
        )


class PromotionPipeline(Construct):
    """Creates the pipeline: GitHub source through a CodeStar connection, the synth step, then one
    SageBertStage per configured stage in order, manual approvals before the `approval_before` stages,
    a smoke test after every stage with an API, and (with notification_email) a KMS-encrypted SNS topic
    told when an approval waits or an execution fails.

    Exposes `pipeline` (the CDK Pipelines CodePipeline), `stages` (name -> SageBertStage) and `topic`.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PipelineConfig,
        stages: dict[str, StageConfig],
        files: ProjectFiles,
    ) -> None:
        super().__init__(scope, id_)
        self._source = source = pipelines.CodePipelineSource.connection(
            config.repository, config.branch, connection_arn=config.connection_arn
        )
        # Stages that deploy the latest Approved registry version: the synth step resolves it (with read-only
        # permissions on those groups) between the tests and the synth, so the assembly pins the version it found.
        resolving = registry_groups(config, stages)
        commands = list(SYNTH_COMMANDS)
        commands[-1:-1] = [resolve_command(name) for name in resolving]
        registry_arns: list[str] = []
        for name, groups in resolving.items():
            for group, account in groups:
                region = stages[name].region
                registry_arns += [
                    arn
                    for arn in (
                        group_arn(self, group, account, region),
                        model_package_arn(self, group, "*", account, region),
                    )
                    if arn not in registry_arns
                ]
        synth = pipelines.CodeBuildStep(
            "Synth",
            input=source,
            commands=commands,
            role_policy_statements=[
                iam.PolicyStatement(sid=RESOLVE_SID, actions=list(RESOLVE_ACTIONS), resources=registry_arns)
            ]
            if registry_arns
            else None,
            primary_output_directory="cdk.out",
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
            ),
            partial_build_spec=_runtimes(SYNTH_RUNTIMES),
            # Every build starts fresh: install the pinned packages, fine-tune and package the demo
            # classifier (make test needs the archive), run the whole suite, then synth. The README's
            # figures for a fresh machine add up to well under this limit (not yet timed on CodeBuild).
            timeout=Duration.minutes(60),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            synth=synth,
            pipeline_type=codepipeline.PipelineType.V2,
            self_mutation=True,
            # Stages live in other accounts: the artifact bucket gets a customer-managed KMS key that
            # their deploy roles may use, rotated yearly.
            cross_account_keys=True,
            enable_key_rotation=True,
            # The assets are plain files (the model archive, Lambda code): no Docker anywhere.
            docker_enabled_for_synth=False,
            docker_enabled_for_self_mutation=False,
            # The same CDK CLI as `npx cdk` here (package.json) for self-mutation.
            cli_version=files.cdk_cli_version,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.SMALL
                ),
            ),
        )

        self.stages: dict[str, SageBertStage] = {}
        for name in config.stages:
            stage_config = stages[name]
            stage = SageBertStage(self, name, config=stage_config, files=files)
            self.stages[name] = stage
            pre: list[pipelines.Step] = []
            if name in config.approval_before:
                pre.append(
                    pipelines.ManualApprovalStep(
                        f"Approve-{name}",
                        comment=f"Promote to {name}: the previous stages deployed and passed their smoke tests.",
                    )
                )
            post: list[pipelines.Step] = []
            smoke = self._smoke_test(name, stage, config.account)
            if smoke is not None:
                post.append(smoke)
            self.pipeline.add_stage(stage, pre=pre, post=post)

        # Built now (not at synth) so the bucket, the notification rule and the acknowledgments can reach
        # the parts CDK Pipelines creates.
        self.pipeline.build_pipeline()
        # cfn-lint findings in what CDK Pipelines writes into the pipeline resource itself: E3703 wants Fn::Sub
        # where CDK joins each stage account's bootstrap role ARN over ${AWS::Partition}, W3005 flags the
        # DependsOn on the pipeline's role that the L2 adds beside its GetAtt. Both are correct as they stand.
        cfn_pipeline = self.pipeline.pipeline.node.default_child
        assert isinstance(cfn_pipeline, CfnResource)
        cfn_pipeline.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3703", "W3005"]}})
        self._harden_artifact_bucket()
        self.node.add_validation(_AcknowledgeCdkPipelinesGrants(self))
        self.topic: sns.Topic | None = None
        if config.notification_email is not None:
            self.topic = self._notifications(config.notification_email)
        self.approval_rule: events.Rule | None = None
        approved_groups = sorted({group for pairs in resolving.values() for group, _ in pairs})
        if approved_groups:
            self.approval_rule = self._start_on_approval(approved_groups)

    def _start_on_approval(self, groups: list[str]) -> events.Rule:
        """An EventBridge rule that starts the pipeline when a model package version of `groups` becomes Approved.
        SageMaker sends the event in the group's account and region: this rule, on the pipeline's default bus, sees
        it directly when they are the pipeline's, else once the owner account forwards it (docs/promotion.md)."""
        pipeline = self.pipeline.pipeline
        role = iam.Role(
            self,
            "ApprovalTriggerRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="sagebert promotion pipeline: starts it when a registry model version is approved",
        )
        # A customer-managed policy (NIST 800-53 IAMNoInlinePolicy); the target may not add its own inline one.
        iam.ManagedPolicy(
            self,
            "ApprovalTriggerPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    sid="StartPipeline",
                    actions=["codepipeline:StartPipelineExecution"],
                    resources=[pipeline.pipeline_arn],
                )
            ],
        )
        return events.Rule(
            self,
            "StartOnModelApproval",
            description="sagebert: a model package version of the deployed groups was approved",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[MODEL_PACKAGE_STATE_CHANGE],
                detail={"ModelPackageGroupName": groups, "ModelApprovalStatus": ["Approved"]},
            ),
            targets=[events_targets.CodePipeline(pipeline, event_role=role.without_policy_updates())],
        )

    def _smoke_test(self, name: str, stage: SageBertStage, pipeline_account: str) -> pipelines.CodeBuildStep | None:
        api = stage.api
        if api is None:
            Annotations.of(self).add_warning_v2(
                "sagebert:no-smoke-test",
                f"stage {name} has no api: section, so the pipeline runs no smoke test after it; a broken "
                "endpoint there would not stop the promotion.",
            )
            return None
        settings = stage.config.api
        assert settings is not None  # stage.api exists only with the section
        if settings.auth == "cognito":
            Annotations.of(self).add_warning_v2(
                "sagebert:no-smoke-test",
                f"stage {name} uses api.auth cognito; the pipeline has no user to sign in with, so it runs no "
                "smoke test after this stage.",
            )
            return None
        SmokeTestStack(
            stage,
            "SmokeTest",
            api=api,
            stage=name,
            pipeline_account=pipeline_account,
            description=f"sagebert {name}: the promotion pipeline's smoke-test role for the API",
        )
        account, region = stage.config.account, stage.config.region
        role_arn = f"arn:{Aws.PARTITION}:iam::{account}:role/{smoke_role_name(name)}"
        outputs = {"API_URL": api.api_url_output}
        command = f'python -m sagebert smoke --url "$API_URL" --region {region} --role-arn "$SMOKE_ROLE_ARN"'
        timeout = Duration.minutes(10)
        component = stage.config.endpoint.inference_component
        if component is not None and component.scale_to_zero:
            # The stage may be at zero instances when its smoke test runs (a promotion that did not change it):
            # keep trying through a cold start instead of stopping the promotion.
            attempts = SCALE_FROM_ZERO_WAIT_S // SCALE_FROM_ZERO_RETRY_WAIT_S + 1
            command += f" --attempts {attempts} --retry-wait {SCALE_FROM_ZERO_RETRY_WAIT_S}"
            timeout = Duration.minutes(10 + SCALE_FROM_ZERO_WAIT_S // 60)
        if api.api_key_id_output is not None:
            outputs["API_KEY_ID"] = api.api_key_id_output
            command += ' --api-key-id "$API_KEY_ID"'
        runner = iam.Role(
            self,
            f"SmokeTestRunner-{name}",
            role_name=smoke_runner_role_name(name),
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description=f"sagebert promotion pipeline: runs the smoke test of stage {name}",
        )
        return pipelines.CodeBuildStep(
            f"SmokeTest-{name}",
            # The repository at the promoted commit: sagebert/local/smoke.py and the lock file's botocore pin.
            input=self._source,
            install_commands=[SMOKE_INSTALL],
            commands=[command],
            env={"SMOKE_ROLE_ARN": role_arn},
            env_from_cfn_outputs=outputs,
            role=runner,
            # The runner may only assume the stage's smoke-test role; that role holds the API permissions.
            role_policy_statements=[
                iam.PolicyStatement(sid="AssumeSmokeTestRole", actions=["sts:AssumeRole"], resources=[role_arn])
            ],
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.SMALL
            ),
            partial_build_spec=_runtimes(SMOKE_RUNTIMES),
            timeout=timeout,
        )

    def _harden_artifact_bucket(self) -> None:
        """Versioning, server access logs, expiry and a kept key for the artifact bucket CDK Pipelines creates (it
        already has the customer-managed key and TLS-only policy); its L2 is built inside the pipeline,
        so the settings go on the CloudFormation resource."""
        bucket = self.pipeline.pipeline.artifact_bucket
        cfn_bucket = bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        access_logs = access_log_bucket(self, "ArtifactAccessLogs", RemovalPolicy.RETAIN)
        # What the L2's server_access_logs_bucket would add: the logging service may write this one prefix,
        # for this one source bucket.
        access_logs.add_to_resource_policy(
            iam.PolicyStatement(
                sid="S3ServerAccessLogs",
                principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[access_logs.arn_for_objects(f"{ARTIFACT_LOG_PREFIX}*")],
                conditions={
                    "ArnLike": {"aws:SourceArn": bucket.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                },
            )
        )
        # CDK Pipelines keeps the bucket after deletion but deletes its key with the stack: what the bucket keeps
        # would be unreadable. The key is kept as long (sagebert.checks.deploy_gates.outlived_keys).
        assert bucket.encryption_key is not None
        bucket.encryption_key.apply_removal_policy(RemovalPolicy.RETAIN)
        cfn_bucket.versioning_configuration = s3.CfnBucket.VersioningConfigurationProperty(status="Enabled")
        cfn_bucket.logging_configuration = s3.CfnBucket.LoggingConfigurationProperty(
            destination_bucket_name=access_logs.bucket_name, log_file_prefix=ARTIFACT_LOG_PREFIX
        )
        # Artifacts of old executions are never read again; an execution can wait for approval up to
        # CodePipeline's 7 days, so 30 days of old versions and 90 of current objects are ample.
        cfn_bucket.lifecycle_configuration = s3.CfnBucket.LifecycleConfigurationProperty(
            rules=[
                s3.CfnBucket.RuleProperty(
                    id="ExpireOldArtifacts",
                    status="Enabled",
                    expiration_in_days=90,
                    noncurrent_version_expiration=s3.CfnBucket.NoncurrentVersionExpirationProperty(noncurrent_days=30),
                    abort_incomplete_multipart_upload=s3.CfnBucket.AbortIncompleteMultipartUploadProperty(
                        days_after_initiation=7
                    ),
                )
            ]
        )
        acknowledge(bucket, "NIST.800.53.R5-S3BucketReplicationEnabled", _NO_REPLICATION_ARTIFACTS)

    def _notifications(self, email: str) -> sns.Topic:
        key = kms.Key(
            self,
            "NotificationKey",
            description="sagebert promotion pipeline: notification topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # CodeStar Notifications publishes to the encrypted topic: it needs the key for that.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CodeStarNotificationsPublish",
                principals=[iam.ServicePrincipal("codestar-notifications.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        topic = sns.Topic(self, "Notifications", master_key=key, enforce_ssl=True)
        topic.add_subscription(subscriptions.EmailSubscription(email))
        self.pipeline.pipeline.notify_on(
            "Notify",
            topic,
            events=[
                codepipeline.PipelineNotificationEvents.MANUAL_APPROVAL_NEEDED,
                codepipeline.PipelineNotificationEvents.PIPELINE_EXECUTION_FAILED,
            ],
            detail_type=notifications.DetailType.BASIC,
        )
        return topic


@jsii.implements(IValidation)
class _AcknowledgeCdkPipelinesGrants:
    """Acknowledges, on each IAM policy of the pipeline stack, the findings in the grants CDK Pipelines writes
    itself (it wires every action's role while building the pipeline; sagebert cannot narrow them), and
    nothing else: a statement that is not one of the known CDK Pipelines grants keeps its finding.

    Runs as a validation, after CDK resolved the policies and before cdk-nag reads them, like
    infra.operations.compliance.acknowledge_resources.
    """

    def __init__(self, promotion: PromotionPipeline) -> None:
        self._promotion = promotion

    def validate(self) -> list[str]:
        stack = Stack.of(self._promotion)
        artifacts = self._promotion.pipeline.pipeline.artifact_bucket
        key = artifacts.encryption_key
        bucket_arn = stack.resolve(artifacts.bucket_arn)
        key_arn = stack.resolve(key.key_arn) if key is not None else None
        artifact_resources = [bucket_arn, {"Fn::Join": ["", [bucket_arn, "/*"]]}]
        for construct in self._promotion.node.find_all():
            if not isinstance(construct, iam.CfnPolicy) or Stack.of(construct).node.path != stack.node.path:
                continue  # the promoted stages' own policies are not the pipeline's
            acknowledge(construct, "NIST.800.53.R5-IAMNoInlinePolicy", _INLINE_REASON)
            document = stack.resolve(construct.policy_document)
            for statement in document["Statement"]:
                reason = _known_grant(statement, artifact_resources, key_arn) or _resolve_grant(statement)
                if reason is None:
                    continue
                for action in _as_list(statement["Action"]):
                    if "*" in action:
                        acknowledge(construct, f"AwsSolutions-IAM5[Action::{action}]", reason)
                for resource in _as_list(statement["Resource"]):
                    spelled = nag_spelling(resource)
                    if "*" in spelled:
                        acknowledge(construct, f"AwsSolutions-IAM5[Resource::{spelled}]", reason)
        return []


def _resolve_grant(statement: dict[str, Any]) -> str | None:
    """The reason for the synth step's own registry grant (PromotionPipeline, RESOLVE_SID), else None."""
    if statement.get("Sid") == RESOLVE_SID and set(_as_list(statement["Action"])) <= set(RESOLVE_ACTIONS):
        return (
            "resolve-models reads the deployed groups' versions: model-package/<group>/* is every version of those "
            "groups only (which one is the latest Approved is what the step finds out); read-only actions."
        )
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _known_grant(statement: dict[str, Any], artifact_resources: list[Any], key_arn: Any) -> str | None:
    """The reason a CDK Pipelines grant cannot be narrowed, or None for a statement it did not write."""
    actions = set(_as_list(statement["Action"]))
    resources = _as_list(statement["Resource"])
    spelled = [nag_spelling(r) for r in resources]
    if all(r in artifact_resources for r in resources) and actions <= _ARTIFACT_BUCKET_ACTIONS:
        return (
            "CDK Pipelines' grant on the pipeline's own artifact bucket (bucket.grantRead/grantReadWrite): "
            "every action reads or writes the artifacts of its executions, whose object keys are generated."
        )
    if resources == [key_arn] and actions <= _ARTIFACT_KEY_ACTIONS:
        return (
            "CDK Pipelines' grant on the artifact bucket's own KMS key (encrypt and decrypt artifacts); the "
            "wildcards cover GenerateDataKey's and ReEncrypt's variants on this one key."
        )
    if actions <= _CODEBUILD_LOG_ACTIONS and all(_CODEBUILD_LOGS.match(r) for r in spelled):
        return (
            "CodeBuild's grant to a project role, written by CDK: the log group /aws/codebuild/<project> and its "
            "streams and the report groups <project>-*, which CodeBuild names per build; for CDK Pipelines' one shared "
            "asset-publishing role (AssetSingletonRole, used by every asset project) CDK writes /aws/codebuild/* and "
            "report-group/* in this account and region, and offers no option to narrow them."
        )
    if (
        actions == {"sts:AssumeRole"}
        and len(spelled) == 1
        and _BOOTSTRAP_ROLES.match(spelled[0])
        and "iam:ResourceTag/aws-cdk:bootstrap-role" in json.dumps(statement.get("Condition", {}))
    ):
        return (
            "Self-mutation assumes the CDK bootstrap roles (deploy, file and image publishing), which CDK names "
            "per account and region; the condition limits it to roles tagged aws-cdk:bootstrap-role."
        )
    if spelled == ["*"] and actions <= _SELF_MUTATION_READS:
        return (
            "CDK Pipelines' self-mutation role: CDK writes cloudformation:DescribeStacks and s3:ListBucket on '*' "
            "itself (pipelines codepipeline.ts) and offers no option to narrow them; both take resource ARNs, but "
            "the stacks and asset buckets it reads are those of the promoted accounts, known only from the cloud "
            "assembly at run time. Both only read."
        )
    if spelled == ["*"] and actions <= _ASSET_ROLE_BUILD_ACTIONS:
        return (
            "CDK Pipelines' one shared asset-publishing role (AssetSingletonRole): CDK writes codebuild:StartBuild, "
            "StopBuild and BatchGetBuilds on '*' and offers no option to narrow them. These actions do take project "
            "ARNs; the pipeline's own CodeBuild action role holds them scoped to the asset projects' ARNs."
        )
    return None


_ARTIFACT_BUCKET_ACTIONS = {
    "s3:Abort*",
    "s3:DeleteObject*",
    "s3:GetBucket*",
    "s3:GetObject*",
    "s3:List*",
    "s3:PutObject",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
}
_ARTIFACT_KEY_ACTIONS = {"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"}
_CODEBUILD_LOG_ACTIONS = {
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "codebuild:BatchPutCodeCoverages",
    "codebuild:BatchPutTestCases",
    "codebuild:CreateReport",
    "codebuild:CreateReportGroup",
    "codebuild:UpdateReport",
}
_CODEBUILD_LOGS = re.compile(
    r"^arn:[a-z-]+:(logs:[a-z0-9-]+:\d{12}:log-group:/aws/codebuild/|codebuild:[a-z0-9-]+:\d{12}:report-group/)"
)
_BOOTSTRAP_ROLES = re.compile(r"^arn:\*:iam::\d{12}:role/\*$")
_SELF_MUTATION_READS = {"cloudformation:DescribeStacks", "s3:ListBucket"}
_ASSET_ROLE_BUILD_ACTIONS = {"codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"}
_INLINE_REASON = (
    "CDK Pipelines adds each action's permissions to its role's default (inline) policy while it wires the "
    "pipeline; every statement there is scoped to the pipeline's own bucket, key, projects and bootstrap roles."
)
_NO_REPLICATION_ARTIFACTS = (
    "Pipeline artifacts are intermediates that the next execution rebuilds from the repository; versioning protects "
    "them, and cross-region replication would double storage for no recovery gain."
)


def _runtimes(runtimes: dict[str, str]) -> codebuild.BuildSpec:
    """A partial buildspec that selects the image's language runtimes in the install phase."""
    return codebuild.BuildSpec.from_object({"phases": {"install": {"runtime-versions": runtimes}}})


class PipelineStack(Stack):
    """The promotion pipeline, in the tooling account and region of config/pipeline.yaml."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PipelineConfig,
        stages: dict[str, StageConfig],
        files: ProjectFiles,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, env=Environment(account=config.account, region=config.region), **kwargs)
        self.promotion = PromotionPipeline(self, "Promotion", config=config, stages=stages, files=files)
