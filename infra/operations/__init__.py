"""What every path shares to run safely: alarms and dashboards, the artifact store, KMS key
policies, log retention, and the compliance checks (cdk-nag) applied to the whole app."""
