"""The workflow as data: spec models, YAML loading, JSON Schema, static validation."""
