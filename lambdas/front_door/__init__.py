"""The API front door: API Gateway (REST, Lambda proxy) -> this function -> SageMaker InvokeEndpoint.

Modules: `contract` (the request schema, its limits and the error table), `settings` (typed
settings from environment variables), `proxy` (the request logic, with an injected boto3 client)
and `handler` (the thin Lambda entry point with Powertools). Code root in Lambda: `lambdas/`.
"""
