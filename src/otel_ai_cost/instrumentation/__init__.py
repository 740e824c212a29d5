"""Auto-instrumentors, one module per provider SDK."""
