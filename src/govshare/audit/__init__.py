"""Append-only, tamper-evident audit log (SM3 hash chain)."""
