"""Study section of the embeddings stage (owned by the training stage)."""

from __future__ import annotations

from probe._schema import StrictModel


class EmbeddingsSection(StrictModel):
    """Placeholder until the embeddings stage defines its schema."""
