"""walkrun's test suite (a package, so shared helpers are imported by name: `tests.factories`)."""
