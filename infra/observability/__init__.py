"""The stage's dashboard and alarms (and their SNS topic): they watch the online and batch paths, so they
sit above them; operations/ sits below every path (keys, store, logs, compliance)."""
