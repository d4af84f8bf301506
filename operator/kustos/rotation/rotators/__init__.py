"""Built-in rotators, one module each, registered by name in `kustos.rotation.registry`.

generated    fresh random values, no target to update
postgresql   PostgreSQL users (single-user, alternating-users)
mysql        MySQL/MariaDB users (single-user, alternating-users)
webhook      custom rotation: the four steps forwarded to an HTTPS endpoint
"""
