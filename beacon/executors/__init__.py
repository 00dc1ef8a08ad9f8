"""Executor backends: llamacpp (embedded), ollama (GPU hosts), golem (the Golem network through yapapi)."""
