"""A small SAML 2.0 identity provider for tests and local demos, run in a thread on 127.0.0.1.

It makes an RSA key and a self-signed certificate at start, serves its metadata
(``/metadata``) and a single sign-on endpoint (``/sso``, HTTP-Redirect binding) that reads the
SP's AuthnRequest and answers with the usual auto-submitting HTML form carrying a SAML Response
whose assertion is signed with xmlsec (``OneLogin_Saml2_Utils.add_sign``). ``build_response``
is public so tests can craft IdP-initiated, expired, unsigned or otherwise hostile responses.

    with SamlTestIdp() as idp:
        idp.user = {"name_id": "ada@acme.test", "attributes": {"email": ["ada@acme.test"]}}
        idp.metadata_xml()
"""

from __future__ import annotations

import base64
import html
import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from onelogin.saml2.utils import OneLogin_Saml2_Utils

NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
EMAIL_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def make_key_and_cert(common_name: str = "LeanVibe test IdP") -> tuple[str, str]:
    """An RSA private key and a self-signed certificate, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(tz=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id() -> str:
    return "_" + secrets.token_hex(20)


PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105 - a SAML class name


class SamlTestIdp:
    def __init__(self) -> None:
        self.key_pem, self.cert_pem = make_key_and_cert()
        self.user: dict[str, Any] = {
            "name_id": "user@example.test",
            "attributes": {"email": ["user@example.test"], "name": ["Test User"]},
        }
        self.requests: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> SamlTestIdp:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                idp._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> SamlTestIdp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start() the provider first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def entity_id(self) -> str:
        return f"{self.base_url}/metadata"

    @property
    def sso_url(self) -> str:
        return f"{self.base_url}/sso"

    @property
    def cert_body(self) -> str:
        return "".join(line for line in self.cert_pem.splitlines() if "-----" not in line)

    # --- protocol -----------------------------------------------------------------------
    def metadata_xml(self) -> str:
        return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{self.entity_id}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false"
      protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{self.cert_body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>{EMAIL_FORMAT}</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="{self.sso_url}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"""

    @staticmethod
    def parse_authn_request(saml_request: str) -> dict[str, str]:
        xml = OneLogin_Saml2_Utils.decode_base64_and_inflate(saml_request)
        root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        issuer = root.find(f"{{{NS_SAML}}}Issuer")
        return {
            "id": root.get("ID", ""),
            "acs_url": root.get("AssertionConsumerServiceURL", ""),
            "sp_entity_id": issuer.text if issuer is not None and issuer.text else "",
        }

    def build_response(
        self,
        *,
        acs_url: str,
        audience: str,
        in_response_to: str | None,
        name_id: str | None = None,
        attributes: dict[str, list[str]] | None = None,
        not_on_or_after: datetime | None = None,
        assertion_id: str | None = None,
        sign: bool = True,
        key_pem: str | None = None,
    ) -> str:
        """A SAML Response (XML text) with one assertion, signed unless ``sign`` is false."""
        now = datetime.now(tz=UTC)
        expires = not_on_or_after or now + timedelta(minutes=5)
        name_id = name_id if name_id is not None else str(self.user["name_id"])
        # How the person authenticated at the IdP: ``user["authn_context"]`` (e.g. a multi-factor
        # class) or a password over TLS.
        authn_context = str(self.user.get("authn_context") or PASSWORD_CONTEXT)
        attributes = attributes if attributes is not None else dict(self.user.get("attributes") or {})
        irt = f' InResponseTo="{in_response_to}"' if in_response_to else ""
        assertion_id = assertion_id or _new_id()
        attribute_xml = "".join(
            f"<saml:Attribute Name={quoteattr(name)}>"
            + "".join(
                f'<saml:AttributeValue xsi:type="xs:string">{escape(v)}</saml:AttributeValue>' for v in values
            )
            + "</saml:Attribute>"
            for name, values in attributes.items()
        )
        assertion = (
            f'<saml:Assertion xmlns:saml="{NS_SAML}" xmlns:xs="http://www.w3.org/2001/XMLSchema"'
            f' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="{assertion_id}" Version="2.0"'
            f' IssueInstant="{_instant(now)}"><saml:Issuer>{self.entity_id}</saml:Issuer>'
            f'<saml:Subject><saml:NameID Format="{EMAIL_FORMAT}">{escape(name_id)}</saml:NameID>'
            '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
            f'<saml:SubjectConfirmationData NotOnOrAfter="{_instant(expires)}" Recipient="{acs_url}"{irt}/>'
            "</saml:SubjectConfirmation></saml:Subject>"
            f'<saml:Conditions NotBefore="{_instant(now - timedelta(minutes=1))}"'
            f' NotOnOrAfter="{_instant(expires)}"><saml:AudienceRestriction>'
            f"<saml:Audience>{escape(audience)}</saml:Audience></saml:AudienceRestriction></saml:Conditions>"
            f'<saml:AuthnStatement AuthnInstant="{_instant(now)}" SessionIndex="{_new_id()}">'
            f"<saml:AuthnContext><saml:AuthnContextClassRef>{escape(authn_context)}"
            "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
            f"<saml:AttributeStatement>{attribute_xml}</saml:AttributeStatement></saml:Assertion>"
        )
        if sign:
            signed = OneLogin_Saml2_Utils.add_sign(assertion, key_pem or self.key_pem, self.cert_pem)
            assertion = signed.decode() if isinstance(signed, bytes) else str(signed)
            assertion = re.sub(r"^<\?xml[^>]*\?>\s*", "", assertion)
        return (
            f'<samlp:Response xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="{_new_id()}" Version="2.0"'
            f' IssueInstant="{_instant(now)}" Destination="{acs_url}"{irt}>'
            f"<saml:Issuer>{self.entity_id}</saml:Issuer><samlp:Status>"
            '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
            f"{assertion}</samlp:Response>"
        )

    @staticmethod
    def encode(response_xml: str) -> str:
        return base64.b64encode(response_xml.encode()).decode()

    def answer(self, saml_request: str) -> tuple[str, str]:
        """The ACS URL and the (base64) signed response for an AuthnRequest from the SP."""
        request = self.parse_authn_request(saml_request)
        self.requests.append(request)
        xml = self.build_response(
            acs_url=request["acs_url"], audience=request["sp_entity_id"], in_response_to=request["id"]
        )
        return request["acs_url"], self.encode(xml)

    # --- HTTP ---------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/metadata":
            return self._send(handler, 200, self.metadata_xml(), "application/samlmetadata+xml")
        if url.path == "/sso" and "SAMLRequest" in query:
            acs_url, response = self.answer(query["SAMLRequest"])
            relay = query.get("RelayState", "")
            page = (
                '<!doctype html><html><body onload="document.forms[0].submit()">'
                f'<form method="post" action="{html.escape(acs_url)}">'
                f'<input type="hidden" name="SAMLResponse" value="{html.escape(response)}">'
                f'<input type="hidden" name="RelayState" value="{html.escape(relay)}">'
                '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
            )
            return self._send(handler, 200, page, "text/html; charset=utf-8")
        return self._send(handler, 404, "not found", "text/plain")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
