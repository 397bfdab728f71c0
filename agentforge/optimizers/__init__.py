"""Optimizers: plain objects that propose new workflow versions (reflect, textgrad, mipro); the contract is in
``base``, names resolve through ``registry``. They never write anything: the evolve loop does."""
