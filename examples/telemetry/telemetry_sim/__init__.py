"""The telemetry example's ping generator: simulated Firefox clients (see ../generator.py)."""
