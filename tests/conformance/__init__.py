"""Conformance of the hsp sandbox with lua_sandbox 1.4 (see lsb.py)."""
