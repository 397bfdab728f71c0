"""Executors, one module per node kind."""
