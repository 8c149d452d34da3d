"""Models: chains of catalog layers, one file each or several per file; each registers itself on import."""
