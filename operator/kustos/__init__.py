"""Kustos: AWS Secrets Manager for Kubernetes.

Layers (imports only point down; `.importlinter` enforces it):

    cli | operator (kopf handlers) | api (HTTP server)      adapters: thin, no business logic
    services                                                 use cases
    rotation | policy                                        domain mechanisms
    store | crypto | kube                                    persistence, cryptography, cluster I/O
    models | errors                                          vocabulary
"""

__version__ = "0.1.0"
