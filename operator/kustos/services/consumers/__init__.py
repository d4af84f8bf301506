"""What the apps that consume a projected Secret see: its keys rendered from templates
(`templates`, run in a sandboxed child process by `template_worker`).

Nothing here knows Kopf or HTTP; the projection calls in.
"""
