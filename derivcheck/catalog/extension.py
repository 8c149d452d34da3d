"""The extension API in one place: a layer, a model, an activation, an input domain, a detector.

Each is one function registered into its table (the catalog's tables are owned by
``catalog.registry``; the detectors' by ``checker.diagnosis``)::

    from derivcheck.catalog.extension import Arg, def_layer, def_elementwise, def_model, Step, def_domain, def_detector
"""

from __future__ import annotations

from derivcheck.catalog.compose import Step, def_model
from derivcheck.catalog.declarations import Arg, Layer, def_elementwise, def_layer
from derivcheck.catalog.domains import def_domain
from derivcheck.checker.diagnosis import Hypothesis, detector as def_detector

__all__ = ["Arg", "Hypothesis", "Layer", "Step", "def_detector", "def_domain", "def_elementwise", "def_layer", "def_model"]
