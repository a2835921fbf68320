"""The standard benchmark workload (Hindsight plugins and config), run unchanged by `hsp bench`."""
