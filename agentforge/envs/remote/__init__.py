"""Remote environments: the AgentGym HTTP client, its per-env profiles and action adapters, and the server."""
