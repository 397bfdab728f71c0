"""The LLM layer: one gateway over litellm, a response cache, the local model, a scripted test double."""
