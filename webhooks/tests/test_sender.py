"""The safety of one send: https and public addresses only unless allowed, one resolution whose checked address is
the one connected to, no redirects, at most 1 KB of the answer, a timeout."""

import socket
import threading

import pytest

from webhooks import sender

from .conftest import Receiver


def _fake_dns(monkeypatch, *addresses: str):
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in addresses]

    monkeypatch.setattr(sender.socket, "getaddrinfo", getaddrinfo)


def test_a_loopback_receiver_is_refused_unless_allowed(receiver: Receiver, settings):
    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": False}
    result = sender.post(receiver.url, body="{}", headers={})
    assert result.status_code is None and "https" in result.error
    assert receiver.requests == []


def test_a_name_resolving_to_an_internal_address_is_refused(monkeypatch, settings):
    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": False}
    _fake_dns(monkeypatch, "93.184.216.34", "10.0.0.5")  # rebinding: one public, one private answer
    result = sender.post("https://hooks.example.test/x", body="{}", headers={})
    assert result.status_code is None and "private" in result.error


def test_the_checked_address_is_the_one_connected_to_with_the_host_kept(receiver: Receiver, monkeypatch, settings):
    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": True}
    port = receiver.url.split(":")[2].split("/")[0]
    calls = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        calls.append(host)
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(sender.socket, "getaddrinfo", getaddrinfo)
    result = sender.post(f"http://hooks.example.test:{port}/hooks", body="{}", headers={"webhook-id": "msg_1"})
    assert result.status_code == 200
    # The name was resolved once, by the check; the connection went to the checked address (a literal).
    assert [host for host in calls if host != "127.0.0.1"] == ["hooks.example.test"]
    (got,) = receiver.requests
    assert got.headers["host"] == f"hooks.example.test:{port}" and got.headers["webhook-id"] == "msg_1"


def test_redirects_are_not_followed(receiver: Receiver, settings):
    receiver.redirect_to = receiver.url + "/moved"  # followed, it would arrive here a second time
    result = sender.post(receiver.url, body="{}", headers={})
    assert result.status_code == 302 and not result.succeeded
    assert [r.path for r in receiver.requests] == ["/hooks"]


def test_only_the_first_kilobyte_of_the_answer_is_read(receiver: Receiver):
    receiver.answer = b"x" * 200_000
    result = sender.post(receiver.url, body="{}", headers={})
    assert result.status_code == 200 and result.answer == "x" * 1024


def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(receiver: Receiver):
    receiver.hold = threading.Event()
    result = sender.post(receiver.url, body="{}", headers={}, timeout=0.5)
    receiver.hold.set()
    assert result.status_code is None and result.error.startswith("Timed out")


def test_nothing_listening_is_a_failed_attempt():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = sender.post(f"http://127.0.0.1:{port}/x", body="{}", headers={})
    assert result.status_code is None and "ConnectError" in result.error


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@example.com/", "https:///x", "javascript:alert(1)", "https://example.com:99999/", "https://0.0.0.0/"],
)
def test_malformed_or_unsafe_urls_are_refused(url):
    with pytest.raises(sender.UnsafeUrl):
        sender.url_check(url, allow_insecure=False)


def _self_signed(tmp_path, name: str):
    """A certificate for `name` (its own CA), written as PEM files: (cert path, key path)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize("url_host, verified", [("hooks.example.test", True), ("other.example.test", False)])
def test_https_checks_the_certificate_against_the_urls_host_while_connecting_to_the_checked_address(
    receiver: Receiver, tmp_path, monkeypatch, settings, url_host, verified
):
    import ssl

    settings.COUPONS = {**settings.COUPONS, "WEBHOOKS_ALLOW_INSECURE": True}  # the checked address is 127.0.0.1 here
    cert_path, key_path = _self_signed(tmp_path, "hooks.example.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    # A second server for the same recording receiver, speaking TLS with a certificate for hooks.example.test.
    from http.server import ThreadingHTTPServer

    from .conftest import _handler

    tls_server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    tls_server.socket = server_context.wrap_socket(tls_server.socket, server_side=True)
    thread = threading.Thread(target=tls_server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert_path))
    monkeypatch.setattr(sender, "_tls_context", lambda: client_context)
    _fake_dns(monkeypatch, "127.0.0.1")
    try:
        result = sender.post(f"https://{url_host}:{tls_server.server_address[1]}/tls", body="{}", headers={})
    finally:
        tls_server.shutdown()
        tls_server.server_close()
    if verified:
        assert result.status_code == 200, result.error
        assert receiver.requests[-1].path == "/tls" and receiver.requests[-1].headers["host"].startswith(url_host)
    else:
        assert result.status_code is None and "CERTIFICATE_VERIFY_FAILED" in result.error
