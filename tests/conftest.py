"""Suite-wide settings: no hypothesis deadline (first calls compile with XLA), float32 JAX."""

import jax
from hypothesis import settings

settings.register_profile("mvsim", deadline=None)
settings.load_profile("mvsim")

jax.config.update("jax_enable_x64", False)
