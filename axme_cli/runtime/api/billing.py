"""/v1/billing/*: plans and invoices belong to AXME's hosted service; a runtime of your own charges nothing. Each
route answers, to any caller with a valid credential, 501 ``not_available_locally`` in the AXP error shape (not a
404 "no route"), so a client that calls them (the official SDK's billing methods) learns why."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from axme_cli.runtime.api.common import authenticate
from axme_cli.runtime.api.errors import answer

NOT_AVAILABLE = 501
CODE = "not_available_locally"


def _not_available(operation: str, what: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        await authenticate(request, elsewhere_ok=True)  # every workspace gets the same answer
        return answer(NOT_AVAILABLE, CODE, f"{what} is not available on a local runtime: billing plans and invoices "
                      "are AXME's hosted service's, and this runtime charges nothing",
                      details={"operation": operation, "retryable": False}, request=request)

    endpoint.__name__ = operation.replace(".", "_")
    return endpoint


routes = [
    Route("/v1/billing/plan", _not_available("billing.plan.update", "changing the billing plan"), methods=["PATCH"]),
    Route("/v1/billing/plan", _not_available("billing.plan.get", "the billing plan"), methods=["GET"]),
    Route("/v1/billing/invoices", _not_available("billing.invoices.list", "listing invoices"), methods=["GET"]),
    Route("/v1/billing/invoices/{invoice_id}", _not_available("billing.invoices.get", "an invoice"),
          methods=["GET"]),
]
