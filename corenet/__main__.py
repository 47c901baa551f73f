"""``python -m corenet``: the same as the ``corenet-proxy`` command.

The framework never imports its application: the command is found by name,
which is why this entry point is the one module of ``corenet/`` that names
``corenet.proxy`` (the layering test allows exactly this).
"""

import runpy

runpy.run_module("corenet.proxy", run_name="__main__", alter_sys=True)
