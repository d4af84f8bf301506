"""Vocabulary of Kustos: pydantic models and value types. No I/O here."""

from kustos.models.sensitive import SecretValue

__all__ = ["SecretValue"]
