"""GridMap HTTP API (FastAPI). Depends on ``geo`` and ``maps``."""
