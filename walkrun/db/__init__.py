"""Results database: SQLAlchemy models, engine/session, Alembic migrations and aggregate queries."""
