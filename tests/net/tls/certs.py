"""Certificates made at test time, and the contexts and files the peers need."""
from __future__ import annotations

import ssl

import trustme


class Certs:
    """A CA of our own, a server certificate for localhost (and the loopback addresses), a
    second CA that nobody trusts, and their PEM files under `directory`."""

    def __init__(self, directory):
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.stranger = trustme.CA().issue_cert("localhost", "127.0.0.1", "::1")
        self.ca_file = directory / "ca.pem"
        self.cert_file = directory / "server.pem"
        self.key_file = directory / "server.key"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.server.cert_chain_pems[0].write_to_path(str(self.cert_file))
        self.server.private_key_pem.write_to_path(str(self.key_file))

    def server_context(self, cert=None, alpn=None):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server).configure_cert(ctx)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def client_context(self, alpn=None):
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx
