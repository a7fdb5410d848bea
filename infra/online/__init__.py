"""The real-time path: the SageMaker endpoint (variants, guardrails, scaling), the API Gateway +
Lambda front door (with auth and WAF) and the private network it can run in."""
