"""Tenantry core: the domain and all I/O. Nothing here imports Textual."""
