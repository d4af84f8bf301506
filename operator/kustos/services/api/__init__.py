"""The Secrets Manager API use cases: one module per group of operations, one entry point."""
