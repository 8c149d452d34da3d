"""The catalog: layer and model declarations, the one registry that owns their tables, and the
extension API (``def_layer``, ``def_model``, ``def_elementwise``, ``def_domain``) in ``declarations``."""
