"""Project scaffolding: render the ML project template (copier) into a new project.

``render_project`` renders the template shipped in the package (``TEMPLATE_DIR``) or a git
repository holding it at its root (the platform's ``ml-project-template``).
"""

from __future__ import annotations

from mlyard.scaffold.render import TEMPLATE_DIR, default_answers, package_name_for, render_project

__all__ = ["TEMPLATE_DIR", "default_answers", "package_name_for", "render_project"]
