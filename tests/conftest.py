"""Suite-wide settings: no hypothesis deadline (first calls compile with XLA), float32 JAX."""

import os
import tempfile

import jax
from hypothesis import settings

settings.register_profile("mvsim", deadline=None)
settings.load_profile("mvsim")

jax.config.update("jax_enable_x64", False)

# Sweeps started by the tests (in-process and as subprocesses) share one compilation cache
# for the session, so the same tiny shapes compile once; the user's cache is left alone.
os.environ["MVSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="mvsim-test-jax-cache-")
