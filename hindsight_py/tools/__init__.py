"""Command-line tools built on the message layer (hsp cat, bench)."""
