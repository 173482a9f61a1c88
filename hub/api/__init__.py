"""The web layer: the FastAPI app factory and routers. The only package that imports FastAPI."""
