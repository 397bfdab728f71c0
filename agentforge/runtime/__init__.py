"""Execution: compile a spec to LangGraph, run it, trace it."""
