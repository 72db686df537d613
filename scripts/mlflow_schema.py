"""Generate src/mlyard/registry/data/mlflow-<version>.sql: the schema of a new MLflow SQLite store.

mlyard writes a new environment's store from this file (mlyard.registry.template) instead of running MLflow's
migrations in each new store. Run it after changing the MLflow pin (pyproject.toml): it creates a store with
the installed MLflow's migrations in a temporary folder and writes what they created.

    python scripts/mlflow_schema.py

MLflow's migrations write the constraints of some tables in an order that varies from run to run, so two runs
may give files that differ in that order only; tests/registry/test_template.py compares the stores they make.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mlyard.registry.store import migrate_store
from mlyard.registry.template import dump, installed_mlflow, schema_file


def generate() -> tuple[Path, str]:
    version = installed_mlflow()
    if version is None:
        raise SystemExit("MLflow is not installed: pip install -e '.[ml]'")
    with tempfile.TemporaryDirectory(prefix="mlyard-mlflow-schema-") as tmp:
        db = Path(tmp) / "mlflow.db"
        migrate_store(db, Path(tmp) / "mlartifacts")
        return schema_file(version), dump(db, version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    target, text = generate()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target} ({len(text)} characters)")


if __name__ == "__main__":
    main()
