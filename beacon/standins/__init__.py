"""Loopback stand-ins of wire protocols this machine cannot reach (Ollama, kubo). Named as stand-ins:
they speak the real protocol shapes so the real client libraries can be tested against them."""
