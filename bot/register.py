"""``atlas-bot register``: create the GitHub App from ``app.yml`` with GitHub's manifest flow.

1. A one-page form on http://127.0.0.1:PORT/ posts the manifest (``app.yml`` with this server's callback as
   ``redirect_url``) to GitHub's "new App" page, with a random ``state``.
2. After the maintainer confirms on GitHub, GitHub redirects to ``/callback?code=…&state=…``.
3. The code is exchanged with ``POST /app-manifests/{code}/conversions`` for the App's id, private key and
   webhook secret, which are stored with 0600 permissions under the data directory, where ``serve`` reads them.
https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
"""

from __future__ import annotations

import html
import json
import os
import secrets
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import yaml

from bot.settings import APP_FILE, DEFAULT_API_URL, KEY_FILE, Settings

DEFAULT_GITHUB_URL = "https://github.com"
# Shipped inside the package, so a pip-installed bot can register too.
MANIFEST_PATH = Path(__file__).resolve().parent / "app.yml"
# Hosts of the manifest's placeholder URLs: GitHub would send every webhook there.
PLACEHOLDER_HOSTS = ("example.com", "example.org", "example.net")
APP_NAME_LIMIT = 34
REQUIRED_KEYS = ("name", "url", "hook_attributes", "default_permissions", "default_events")
CONVERSION_PATH = "/app-manifests/{code}/conversions"
# What the conversion returns that serve needs (the rest is kept for the maintainer's reference).
STORED_FIELDS = ("id", "slug", "name", "html_url", "client_id", "client_secret", "webhook_secret")
HTTP_TIMEOUT_SECONDS = 30
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Register atlas-bot</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>Create the atlas-bot GitHub App</h1>
<p>This sends the App manifest from <code>app.yml</code> to {target}. GitHub shows what the App may do and asks
you to confirm; afterwards it sends you back here and the App's credentials are stored in
<code>{store}</code>.</p>
<p>Webhooks will go to <code>{hook}</code>.</p>
<form action="{action}" method="post">
<input type="hidden" name="manifest" value="{manifest}">
<button type="submit" style="font-size: 1.2em">Create GitHub App</button>
</form>
</body></html>
"""
DONE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>atlas-bot registered</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>{name} is registered</h1>
<p>App id {app_id}; credentials stored in <code>{store}</code>.</p>
<p>Next: <a href="{install}">install the App</a> on the repositories to check, then run
<code>atlas-bot serve</code>. You can close this tab.</p>
</body></html>
"""
FAILED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>atlas-bot: not registered
</title></head><body><h1>Registration failed</h1><p>{reason}</p></body></html>
"""


class RegisterError(Exception):
    """The manifest is unusable or GitHub refused the exchange; the message says which."""


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    """``app.yml`` as a dict, with the keys GitHub requires present."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RegisterError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RegisterError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RegisterError(f"{path}: expected a mapping of manifest keys")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise RegisterError(f"{path}: missing {', '.join(missing)}")
    hook = data["hook_attributes"]
    if not isinstance(hook, dict) or not str(hook.get("url", "")).startswith(("http://", "https://")):
        raise RegisterError(f"{path}: hook_attributes.url must be the http(s) URL of your /webhook")
    return data


def fill_manifest(manifest: Mapping[str, Any], webhook_url: str | None, name: str | None = None) -> dict[str, Any]:
    """The manifest with the server's webhook URL (and its origin as the App's homepage) and name filled in.

    A manifest still pointing at a placeholder host is refused: the App would be created, and every webhook
    lost.
    """
    filled = json.loads(json.dumps(manifest))
    if webhook_url is not None:
        parts = urllib.parse.urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegisterError(f"--webhook-url {webhook_url!r} must be the http(s) URL of your server's /webhook")
        filled["hook_attributes"]["url"] = webhook_url
        filled["url"] = f"{parts.scheme}://{parts.netloc}"
    if name is not None:
        if not name.strip() or len(name) > APP_NAME_LIMIT:
            raise RegisterError(f"--name must be 1 to {APP_NAME_LIMIT} characters (GitHub's limit for App names)")
        filled["name"] = name
    host = (urllib.parse.urlsplit(str(filled["hook_attributes"]["url"])).hostname or "").lower()
    if any(host == placeholder or host.endswith("." + placeholder) for placeholder in PLACEHOLDER_HOSTS):
        raise RegisterError(f"the webhook URL points at the placeholder host {host}: pass --webhook-url "
                            "https://YOUR-SERVER/webhook (where `atlas-bot serve` is reachable from GitHub)")
    return filled


def api_url_for(github_url: str, settings: Settings | None = None) -> str:
    """REST API root: github.com's API host, or ``<GHES>/api/v3`` (an explicit GITHUB_API_URL wins)."""
    if settings is not None and settings.github_api_url != DEFAULT_API_URL:
        return settings.github_api_url.rstrip("/")
    if github_url.rstrip("/") == DEFAULT_GITHUB_URL:
        return DEFAULT_API_URL
    return github_url.rstrip("/") + "/api/v3"


def new_app_url(github_url: str, org: str | None, state: str) -> str:
    """GitHub's page that accepts a manifest, for the user's account or an organisation."""
    base = github_url.rstrip("/")
    path = f"/organizations/{urllib.parse.quote(org)}/settings/apps/new" if org else "/settings/apps/new"
    return f"{base}{path}?state={urllib.parse.quote(state)}"


def install_url(html_url: Any) -> str:
    """Where the maintainer installs the new App (its ``html_url`` from the conversion)."""
    return f"{str(html_url or '').rstrip('/')}/installations/new"


def exchange_code(api_url: str, code: str) -> dict[str, Any]:
    """``POST /app-manifests/{code}/conversions`` (no authentication: the one-hour code is the credential)."""
    url = api_url.rstrip("/") + CONVERSION_PATH.format(code=urllib.parse.quote(code, safe=""))
    request = urllib.request.Request(url, method="POST", data=b"", headers={
        "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "atlas-bot",
    })
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise RegisterError(f"GitHub refused the manifest code ({exc.code} on {CONVERSION_PATH}): "
                            "codes expire after an hour and work once; run `atlas-bot register` again") from None
    except (urllib.error.URLError, ValueError) as exc:
        raise RegisterError(f"could not exchange the manifest code at {api_url}: {exc}") from None
    if not isinstance(data, dict) or not all(data.get(key) for key in ("id", "pem", "webhook_secret")):
        raise RegisterError("GitHub's answer lacks the App id, key or webhook secret")
    return data


def store_credentials(directory: Path, conversion: Mapping[str, Any]) -> Path:
    """Write ``app.json`` and ``private-key.pem`` (0600, directory 0700), each atomically; returns the dir."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    app = {key: conversion[key] for key in STORED_FIELDS if key in conversion}
    _write_private(directory / KEY_FILE, str(conversion["pem"]))
    _write_private(directory / APP_FILE, json.dumps(app, indent=2) + "\n")
    return directory


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


@dataclass
class ManifestFlow:
    """The state of one registration: the manifest to post, the expected ``state``, and the outcome."""

    manifest: dict[str, Any]
    github_url: str
    org: str | None
    store_dir: Path
    exchange: Callable[[str], dict[str, Any]]
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    done: threading.Event = field(default_factory=threading.Event)
    app: dict[str, Any] | None = None
    error: str | None = None

    def page(self) -> str:
        return PAGE.format(
            target=html.escape(self.github_url), store=html.escape(str(self.store_dir)),
            hook=html.escape(str(self.manifest["hook_attributes"]["url"])),
            action=html.escape(new_app_url(self.github_url, self.org, self.state)),
            manifest=html.escape(json.dumps(self.manifest), quote=True),
        )

    def callback(self, query: Mapping[str, list[str]]) -> tuple[int, str]:
        """Handle GitHub's redirect: check ``state``, exchange the code, store the credentials."""
        code, state = query.get("code", [""])[0], query.get("state", [""])[0]
        if not code or not secrets.compare_digest(state, self.state):
            # Only the page this process served carries the state; anything else is not our registration.
            return 400, FAILED_PAGE.format(reason="The request does not come from this registration.")
        if self.done.is_set():
            return 409, FAILED_PAGE.format(reason="This registration is already complete.")
        try:
            conversion = self.exchange(code)
            store_credentials(self.store_dir, conversion)
        except RegisterError as exc:
            self.error = str(exc)
            self.done.set()
            return 502, FAILED_PAGE.format(reason=html.escape(str(exc)))
        self.app = {key: conversion.get(key) for key in ("id", "slug", "name", "html_url")}
        self.done.set()
        return 200, DONE_PAGE.format(name=html.escape(str(conversion.get("name", "The App"))),
                                     app_id=html.escape(str(conversion["id"])), store=html.escape(str(self.store_dir)),
                                     install=html.escape(install_url(conversion.get("html_url"))))


def make_server(flow: ManifestFlow, port: int) -> ThreadingHTTPServer:
    """The local page and callback, on loopback only; the manifest's redirect_url is set to the bound port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            parsed = urllib.parse.urlsplit(self.path)
            if parsed.path == "/":
                self._send(200, flow.page())
            elif parsed.path == "/callback":
                self._send(*flow.callback(urllib.parse.parse_qs(parsed.query)))
            else:
                self._send(404, FAILED_PAGE.format(reason="Not found."))

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
            # Request lines carry the one-time code; keep them out of the terminal and logs.
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    flow.manifest["redirect_url"] = f"http://127.0.0.1:{server.server_address[1]}/callback"
    return server


def register_command(
    github_url: str = DEFAULT_GITHUB_URL,
    org: str | None = None,
    port: int = 8765,
    *,
    webhook_url: str | None = None,
    name: str | None = None,
    settings: Settings | None = None,
    manifest_path: Path = MANIFEST_PATH,
    exchange: Callable[[str], dict[str, Any]] | None = None,
    out: TextIO | None = None,
    timeout: float | None = None,
) -> int:
    """Serve the form, wait for GitHub's redirect, store the credentials; 0 on success, 1 otherwise."""
    out = out or sys.stdout
    settings = settings or Settings.load()
    api_url = api_url_for(github_url, settings)
    manifest = fill_manifest(load_manifest(manifest_path), webhook_url, name)
    flow = ManifestFlow(manifest=manifest, github_url=github_url, org=org,
                        store_dir=settings.credentials_dir,
                        exchange=exchange or (lambda code: exchange_code(api_url, code)))
    server = make_server(flow, port)
    thread = threading.Thread(target=server.serve_forever, name="atlas-register", daemon=True)
    thread.start()
    address = f"http://127.0.0.1:{server.server_address[1]}/"
    out.write(f"Open {address} in a browser on this machine and press \"Create GitHub App\".\n"
              f"Waiting for GitHub to send you back (Ctrl-C to give up)...\n")
    out.flush()
    try:
        finished = flow.done.wait(timeout)
    finally:
        server.shutdown()
        server.server_close()
    if not finished:
        out.write("No answer from GitHub; nothing stored.\n")
        return 1
    if flow.error or flow.app is None:
        out.write(f"Registration failed: {flow.error}\n")
        return 1
    out.write(f"Registered {flow.app.get('name')} (App id {flow.app.get('id')}); credentials stored in "
              f"{flow.store_dir}.\nInstall it: {install_url(flow.app.get('html_url'))}\n"
              "Then run: atlas-bot serve\n")
    return 0
