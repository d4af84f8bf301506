"""The ManagedSecret controller: reconcile, value sources, projection, the per-object decision."""
