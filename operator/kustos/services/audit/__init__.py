"""Audit: the durable, verifiable record of who did what, its anchor, sinks and usage."""
