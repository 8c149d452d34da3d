"""Catalog layers on the symbolic side (SymPy): declaration -> index form -> matrix form, compiled,
verified and presented."""

from derivcheck.symbolic import presentation as _presentation  # noqa: F401 - fills the table derivations are shown through
