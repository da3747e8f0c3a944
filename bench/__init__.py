"""Benchmarks of relaybridge on a real stack (``make bench``; ``python -m bench --help``).

Not tests: they measure, with baselines taken in the same run, how fast tokens get
from Relay to open pages, how many one relay worker carries, how quickly a mention
is accepted, how many bytes a page receives, and how much memory the worker needs.
"""
