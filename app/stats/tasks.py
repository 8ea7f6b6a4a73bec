"""The stats area's background task: a large category's robustness and agreement, computed by the job
consumer (app/jobs) so that no web worker spends seconds of numpy on a page view."""

from __future__ import annotations

import logging

from flask import Flask
from huey import Huey

from app.stats import report

log = logging.getLogger(__name__)


def register(huey: Huey, app: Flask) -> dict:
    # retries=0: the next page view after a failure queues it again (the pending marker is released).
    @huey.task(name="kepu.stats.robustness", retries=0)
    def compute_robustness(round_id: int, category: str, method: str, resamples: int, seed: int,
                           version: int | None = None) -> None:
        with app.app_context():
            report.compute_and_store(round_id, category, method, resamples, seed, claimed_version=version)

    return {"compute_robustness": compute_robustness}
