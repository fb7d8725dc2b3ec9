"""Results database: SQLAlchemy models, engine/session, Alembic migrations and aggregate queries."""

# The modules other packages use (loaded on use, not here). The rest is the DB layer's own:
# engine (engines, sessions, schema), store (writes), models (the ORM), stats (the metric count).
__all__ = [
    "budget",
    "cli",
    "compare",
    "distributions",
    "evaluations",
    "export",
    "leases",
    "lineage",
    "problems",
    "queries",
    "read_models",
    "records",
    "regrade",
    "sample_pairs",
    "summaries",
    "training_metrics",
    "uncertainty",
]
