"""The pipeline language: Azure Pipelines YAML -> typed model -> compiled plan. Pure: no I/O but reading files."""
