"""Language models for the agents: the tiny test model and the backends that run models.

Nothing here ever contacts a model hub: importing this package sets ``HF_HUB_OFFLINE=1`` (unless
the environment already decides) before mlx-lm imports ``huggingface_hub``, and the backends
only load models from local folders. mlx and mlx-lm are imported by the submodules
(``agents.inference.tiny_model``, ``agents.inference.backends``) only, so the web processes,
which never import them, do not pay for them.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
