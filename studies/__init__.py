"""The shipped study specs, one TOML per study; installed inside the package as hpo.studies
(pyproject.toml), where `hpo study TASK` finds studies/TASK.toml unless the working directory
has a studies/ folder of its own."""
