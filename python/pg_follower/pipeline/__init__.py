"""Pipelines: a source's changes into a destination, in commit order.

``Pipeline`` drives any ``Destination``; ``subscription`` is the PostgreSQL
follower's own pipeline (grouped, parallel and crash-safe apply into the
downstream through its replication origin).
"""

from pg_follower.pipeline.run import Pipeline

__all__ = ["Pipeline"]
