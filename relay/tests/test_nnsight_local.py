"""Discovery's name for check_nnsight_local.py's unittest (the relay's bodies on nnsight, locally, vs the workbench).

It skips, printing why, where nnsight or torch is missing (as in CI and with the system python3 here).
"""

from check_nnsight_local import NnsightLocalTest  # noqa: F401 — unittest collects it from this module
