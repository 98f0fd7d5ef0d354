"""Network entry points of pagedllm (the OpenAI-compatible HTTP server)."""
