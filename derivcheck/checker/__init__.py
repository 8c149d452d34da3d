"""The numeric checker: ``check_gradient``, ``check_backward``, ``check_hvp``/``check_hessian``, stage by stage.

The stages, in order: ``user_functions`` and ``parameters`` (the boundary with the user's code),
``evaluation`` (the point and its precision), ``joint`` (directions shared by all parameters:
the pass path), ``attribution`` and ``entries`` (the failure path), ``verdict`` (what the report
says besides the rows). ``diagnosis/`` names causes; the engine underneath is ``numeric/``.
"""

from derivcheck.checker import plots as _plots  # noqa: F401 - fills the table behind GradientReport.plot
