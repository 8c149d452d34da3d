"""Layer declarations: one module per layer family; each registers itself on import."""
