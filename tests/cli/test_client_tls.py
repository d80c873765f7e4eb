"""The TLS context of the CLI's client: a runtime at an https:// address is verified against the CA bundle (one
context per process); one at http:// never makes a TLS connection, and the context it gets trusts nothing."""

from __future__ import annotations

import ssl

from axme_cli.client.http import _tls_for


def test_an_https_runtime_is_verified_with_the_ca_bundle_and_one_context_serves_every_client() -> None:
    first, second = _tls_for("https://axme.example"), _tls_for("HTTPS://other.example:8443")
    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert first.cert_store_stats()["x509_ca"] > 0


def test_an_http_runtime_gets_a_context_that_would_refuse_any_certificate() -> None:
    context = _tls_for("http://127.0.0.1:8100")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    assert context is not _tls_for("https://axme.example")
