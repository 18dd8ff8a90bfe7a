"""lm-workbench's NDIF relay: runs fixed, parameterized nnsight experiments on NDIF for the workbench.

Read PROTOCOL.md (the HTTP contract), then server.py (the endpoints), jobs.py (a job's life on NDIF), ndif.py
(NDIF's HTTP API), runner.py and experiments.py (the nnsight side), hooks.py (module paths), params.py (checks).
"""

PROTOCOL = 1
NAME = "lm-workbench-ndif"
DEFAULT_NDIF = "https://api.ndif.us"
