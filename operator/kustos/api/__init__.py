"""The Secrets Manager API: an aiohttp server speaking AWS Secrets Manager's JSON protocol.

An adapter: parses HTTP, calls `kustos.services`, writes AWS-shaped answers. No business logic.
"""
