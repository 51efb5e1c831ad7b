"""The operators' small command lines: `rai-aws` (bucket, queues, IAM policies) and `rai-crypto`."""
