"""The secret core: secrets and their versions, keys, naming, deletion, spec-owned fields."""
