"""Rotation as a use case: when a ManagedSecret rotates, and what the engine needs around it."""
