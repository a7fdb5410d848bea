"""The batch path: scheduled SageMaker batch transform jobs (schedule, state machine, manifest)."""
