"""What every path shares to run safely: the artifact store, KMS key policies, log retention, and the
compliance checks (cdk-nag) applied to the whole app. Nothing here imports a path's constructs."""
