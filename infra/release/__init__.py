"""The release path's construct: the SageMaker model (archive in S3, DLC image, execution role)."""
