"""The Kopf adapter: handlers that turn ManagedSecret events into service calls.

Thin by design: parse what Kopf hands over, call `services`, patch the status, and translate
Kustos errors into Kopf's retry decisions. No business logic, no direct store access.
"""
