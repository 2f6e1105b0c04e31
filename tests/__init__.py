"""The project's tests. A package: iterative-stratification installs a top-level `tests`
package, which would shadow this folder otherwise."""
