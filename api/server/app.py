"""The control plane's FastAPI app: REST over the kinds, inspection, progress, health."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from thinkube import __version__
from thinkube.api.server import dashboard, inspect_routes, observability, problems, progress, resources
from thinkube.api.server.auth import Reviewer
from thinkube.api.server.deps import State
from thinkube.api.server.kube import Connection, Kube, load_connection
from thinkube.api.server.settings import ApiSettings
from thinkube.bodylimit import BodyLimit

DESCRIPTION = """REST over Thinkube's custom resources (CurationJob, SFTRun, BudgetForcedServer,
EvalSweep). Every request carries a Kubernetes bearer token (`Authorization: Bearer ...`):
the control plane asks Kubernetes who it is (TokenReview) and whether RBAC allows the action
(SubjectAccessReview). Errors are RFC 7807 problem details with the offending `field`."""


def create_app(settings: ApiSettings, connection: Connection | None = None) -> FastAPI:
    metrics = observability.Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        client = Kube(connection or load_connection())
        app.state.thinkube = State(
            settings, client, Reviewer(client, settings.review_cache_seconds, metrics.reviews.inc)
        )
        try:
            yield
        finally:
            await client.close()

    app = FastAPI(title="Thinkube control plane", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    problems.install(app)
    app.include_router(resources.router())
    app.include_router(inspect_routes.router)
    app.include_router(progress.router)
    app.include_router(observability.router(metrics))
    app.include_router(dashboard.router)
    observability.install(app, metrics)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, render=problems.too_large)
    return app
