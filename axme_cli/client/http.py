"""A small synchronous client for the runtime's API. Every error becomes a CliError here."""

from __future__ import annotations

from typing import Any

import httpx

from axme_cli import __version__
from axme_cli.errors import EXIT_USAGE, CliError


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"accept": "application/json", "X-Axme-Client": f"axme-cli-py/{__version__}"}
        if api_key:
            headers["x-api-key"] = api_key
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CliError(
                f"cannot reach {self.base_url}", fix="start it with `axme dev`", code="unreachable"
            ) from None
        except httpx.TimeoutException:
            raise CliError(
                f"{self.base_url} did not answer in time", fix="check that the runtime is healthy", code="timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"request to {self.base_url} failed: {exc}", code="transport_error") from None
        return self._parse(response)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def _parse(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400:
            if body is None:
                raise CliError(
                    f"{self.base_url} answered with something that is not JSON",
                    fix="check that the URL points at an axme runtime",
                    code="bad_response",
                )
            return body
        message = None
        code = "http_error"
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                message = error.get("message")
                code = error.get("code") or code
            elif isinstance(error, str):
                message = error
            message = message or (body.get("detail") if isinstance(body.get("detail"), str) else None)
        status = response.status_code
        message = message or f"HTTP {status}"
        if status == 401:
            raise CliError(
                f"not authorised: {message}",
                fix="log in with `axme login` or pass --api-key",
                exit_code=EXIT_USAGE,
                code=code,
            )
        if status == 403:
            raise CliError(f"permission denied: {message}", code=code)
        if status == 404:
            raise CliError(f"not found: {message}", code=code)
        if status >= 500:
            raise CliError(f"server error ({status}): {message}", fix="retry shortly", code=code)
        raise CliError(f"request failed ({status}): {message}", code=code)
