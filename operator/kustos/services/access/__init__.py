"""Access: who is calling (tokens, SigV4, access keys) and may they (policies, revocations)."""
