"""The `kustos` command line: runs the operator and administers keys (more verbs follow)."""
