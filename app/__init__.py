"""kepu-review: 全国科普日优秀组织单位和优秀活动评审系统."""

from __future__ import annotations

import os

from flask import Flask

from app import config as config_module
from app.extensions import csrf, db, limiter, login_manager, migrate

PROJECT_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def create_app(test_config: dict | None = None) -> Flask:
    """Load configuration and register things; nothing here touches the database or the network."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("KEPU_INSTANCE_PATH") or os.path.join(PROJECT_ROOT, "instance"),
        instance_relative_config=True,
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    from app.core.params import BoundedIntConverter

    app.url_map.converters["int"] = BoundedIntConverter
    app.config.from_object(config_module.Defaults)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    app.config.update(config_module.from_environment())
    if test_config:
        app.config.update(test_config)
    if app.config["PRODUCTION"]:
        if app.config["SECRET_KEY"] in (None, "", config_module.DEV_SECRET_KEY):
            raise RuntimeError("生产模式下必须设置 KEPU_SECRET_KEY（不能使用开发密钥）。")
        app.config.update(config_module.production_overrides())
    # The SQLite file and uploads live here; `flask db upgrade` on a fresh clone needs the folder.
    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(app.instance_path, "kepu.sqlite3")
    app.config.setdefault("UPLOAD_FOLDER", os.path.join(app.instance_path, "uploads"))

    app.config.setdefault("JOB_TASK_MODULES", JOB_TASK_MODULES)
    _init_extensions(app)
    _register_blueprints(app)

    from app import cli

    cli.register(app)
    return app


def _init_extensions(app: Flask) -> None:
    from app import models  # noqa: F401  (registers the tables)
    from app.core.database import configure_engine

    db.init_app(app)
    with app.app_context():
        # Engines are created lazily; configure_engine hooks events only, it does not connect.
        configure_engine(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    from app.core import errors, htmx, security, templating

    security.init_app(app)
    errors.init_app(app)
    htmx.init_app(app)
    templating.init_app(app)


# Modules whose register(huey, app) adds an area's background tasks (see app/jobs).
JOB_TASK_MODULES = ("app.reports.tasks", "app.intake.tasks", "app.mail.tasks", "app.stats.tasks")

# Modules whose routes attach to their package's blueprint (app/<area>/blueprint.py).
VIEW_MODULES = (
    "accounts.admin_views",
    "accounts.views",
    "audit.views",
    "deliberation.views",
    "intake.nominator_views",
    "intake.views",
    "mail.views",
    "portal.admin_views",
    "portal.views",
    "publicity.staff_views",
    "publicity.views",
    "ranking.views",
    "reports.views",
    "review.assignment_views",
    "review.views",
    "review.files",
    "rounds.settings_views",
    "rounds.views",
    "tus.views",
)


def _register_blueprints(app: Flask) -> None:
    import importlib

    for name in VIEW_MODULES:
        importlib.import_module(f"app.{name}")
    for area in sorted({name.split(".")[0] for name in VIEW_MODULES}):
        app.register_blueprint(importlib.import_module(f"app.{area}.blueprint").bp)
