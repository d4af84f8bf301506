"""Use cases: what Kustos does, independent of whether Kopf or HTTP asked.

Adapters (operator, api, cli) call these; these call the mechanisms (rotation, policy) and
persistence (store, crypto, kube). `factory.Services` builds and wires them.
"""
