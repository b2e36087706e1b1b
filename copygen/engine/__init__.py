"""The copy engine: fact sheets, selling points, realization and checks (no Django)."""
