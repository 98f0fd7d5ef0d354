"""The OpenAI-compatible HTTP server: ``build_app`` makes the Starlette app, ``run_server``
serves it with uvicorn."""
