"""The project's tests (a package: iterative-stratification installs a top-level `tests` that would shadow this folder otherwise)."""
