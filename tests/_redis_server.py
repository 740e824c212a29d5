"""A throwaway redis-server on a free loopback port, for tests. Fails loudly if it cannot start."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional, Tuple


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_ping(port: int, tls: Optional[ssl.SSLContext] = None) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as raw:
            s = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
            s.sendall(b"PING\r\n")
            # -NOAUTH also proves the server is up and answering.
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _self_signed_certificate(directory: Path) -> Path:
    """A certificate for 127.0.0.1 and its key, in one PEM file that is also the CA to trust."""
    pem = directory / "redis-tls.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(pem), "-out", str(pem)],
        check=True,
        capture_output=True,
    )
    return pem


class RedisURL(str):
    """The URL of a started server, with what a test needs besides: the server's ``process``, the
    ``port``, and with TLS the ``ca_file`` to trust and a ``client_cert`` (one PEM, cert and key) the
    server accepts."""

    process: "subprocess.Popen[bytes]"
    port: int
    ca_file: Optional[str] = None
    client_cert: Optional[str] = None


def _client_certificate(directory: Path) -> Path:
    pem = directory / "redis-client.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=otel-ai-cost-test",
         "-keyout", str(pem), "-out", str(pem)],
        check=True,
        capture_output=True,
    )
    return pem


@contextmanager
def redis_server(
    directory: Path, password: Optional[str] = None, tls: bool = False, attempts: int = 3,
    acl_user: Optional[Tuple[str, str]] = None, client_certs: bool = False,
) -> Iterator[RedisURL]:
    """Start redis-server in ``directory`` without persistence; yield its URL: ``redis://``, with the
    password if one is required, or ``rediss://`` trusting a self-signed certificate with ``tls``.

    ``acl_user=(name, password)``: an ACL user with every right, and the default user off (the URL
    carries no credentials then). ``client_certs``: with ``tls``, the server requires a client
    certificate (``tls-auth-clients yes``), ``url.client_cert``; the URL does not name it."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH: run the tests with ./scripts/test, which provides one "
                           "(scripts/_redis.sh), or apt-get install -y redis-server")
    errors = []
    for _ in range(attempts):  # the port may be taken between choosing it and binding it
        port = _free_port()
        log = directory / f"redis-{port}.log"
        command: List[str] = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                              "--dir", str(directory), "--logfile", str(log)]
        if password:
            command += ["--requirepass", password]
        if acl_user:
            command += ["--user", acl_user[0], "on", f">{acl_user[1]}", "~*", "&*", "+@all", "--user", "default", "off"]
        context, url = None, f"redis://127.0.0.1:{port}/0"
        pem = client = None
        if tls:
            pem = _self_signed_certificate(directory)
            trusted = pem
            if client_certs:
                client = _client_certificate(directory)
                trusted = directory / "redis-trusted.pem"
                trusted.write_text(pem.read_text() + client.read_text())
            command[1:3] = ["--port", "0", "--tls-port", str(port)]
            command += ["--tls-cert-file", str(pem), "--tls-key-file", str(pem), "--tls-ca-cert-file", str(trusted),
                        "--tls-auth-clients", "yes" if client_certs else "no"]
            context = ssl.create_default_context(cafile=str(pem))
            if client is not None:
                context.load_cert_chain(str(client))
            url = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={pem}"
        if password:
            url = url.replace("://", f"://:{password}@", 1)
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None and not _answers_ping(port, context):
            time.sleep(0.02)
        if process.poll() is None and _answers_ping(port, context):
            started = RedisURL(url)
            started.process, started.port = process, port
            started.ca_file = str(pem) if pem else None
            started.client_cert = str(client) if client else None
            try:
                yield started
            finally:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            return
        process.kill()
        process.wait()
        errors.append(log.read_text() if log.exists() else f"exit code {process.returncode}")
    raise RuntimeError("redis-server did not start:\n" + "\n".join(errors))
