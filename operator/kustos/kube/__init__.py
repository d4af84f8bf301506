"""Cluster I/O: the Kubernetes objects Kustos reads and writes besides its own CRs.

Thin gateways over the `kubernetes` client (projected Secrets, source Secrets, Events, the
keyring Secret). No business decisions here: services decide, gateways do.
"""
