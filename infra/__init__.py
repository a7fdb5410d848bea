"""CDK code for sagebert. Runs only at synth time, on a developer machine or in CI; nothing here runs
in AWS. It never imports lambdas/ or model_code/: those reach AWS as assets, by path.

- config/      the stage YAML schema: one module per top-level key over one strict base, load + errors
- catalog/     AWS facts with their JSON: DLC images, compute profiles, prices, measured throughput,
               SageMaker API limits, region support, Powertools layers
- release/     HuggingFaceModel: model data, image, role (the model every path serves)
- online/      the real-time path: RealtimeEndpoint, InferenceApi (front door: FrontDoorFunction, ApiAuth,
               ApiFirewall), PrivateNetwork
- batch/       the batch path: scheduled transform jobs
- operations/  what every path uses: artifact store, key policies, log retention, compliance (cdk-nag)
- observability/  the dashboard and alarms over the online and batch paths
- stacks.py, stage.py, pipeline.py   composition only: they compose constructs and grant
- project_files.py   ProjectFiles: the repository paths app.py resolves once and the stages pass down
"""
