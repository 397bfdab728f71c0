"""AgentGym-style environments: the contract, built-in environments, the HTTP client and server."""
