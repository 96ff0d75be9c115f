"""The manifest flow: the form posts app.yml to GitHub, the callback exchanges the code and stores 0600 files."""

from __future__ import annotations

import html
import io
import json
import re
import stat
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bot.register import (
    MANIFEST_PATH,
    RegisterError,
    api_url_for,
    exchange_code,
    fill_manifest,
    load_manifest,
    new_app_url,
    register_command,
)
from bot.settings import Settings

WEBHOOK_URL = "https://atlas.test.invalid/webhook"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEtest\n-----END RSA PRIVATE KEY-----\n"
CONVERSION = {"id": 4242, "slug": "atlas-bot-test", "name": "atlas-bot test", "pem": PEM,
              "webhook_secret": "whsec-from-github", "client_id": "Iv1.x", "client_secret": "cs",
              "html_url": "https://github.com/apps/atlas-bot-test", "owner": {"login": "octo"}}


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_app_yml_is_a_complete_manifest() -> None:
    manifest = load_manifest(MANIFEST_PATH)
    assert manifest["default_permissions"] == {"pull_requests": "write", "issues": "write", "checks": "write",
                                               "contents": "read", "metadata": "read"}
    # installation events reach every App unasked; GitHub rejects a manifest that lists them.
    assert set(manifest["default_events"]) == {"pull_request", "push", "issue_comment", "issues", "check_run",
                                                "check_suite"}
    assert manifest["hook_attributes"]["url"].endswith("/webhook")
    assert manifest["public"] is False


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\n", "missing url"),
    ("- a\n", "mapping"),
    ("name: [\n", "not valid YAML"),
    ("name: x\nurl: u\nhook_attributes: {url: ftp://x}\ndefault_permissions: {}\ndefault_events: []\n",
     "hook_attributes.url"),
])
def test_bad_manifest_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "app.yml"
    path.write_text(text)
    with pytest.raises(RegisterError, match=message):
        load_manifest(path)


def test_urls_for_github_and_enterprise_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    settings = Settings.load(data_dir=tmp_path)
    assert api_url_for("https://github.com", settings) == "https://api.github.com"
    assert api_url_for("https://ghe.corp/", settings) == "https://ghe.corp/api/v3"
    assert api_url_for("https://ghe.corp", Settings.load(data_dir=tmp_path, github_api_url="https://x/api")) == \
        "https://x/api"
    assert new_app_url("https://github.com", None, "s t") == "https://github.com/settings/apps/new?state=s%20t"
    assert new_app_url("https://github.com", "my-org", "s") == \
        "https://github.com/organizations/my-org/settings/apps/new?state=s"


def run_register(tmp_path: Path, exchange, **kwargs) -> tuple[threading.Thread, dict, io.StringIO]:
    out = io.StringIO()
    result: dict = {}
    settings = Settings.load(data_dir=tmp_path / "data")

    def target() -> None:
        result["code"] = register_command("https://github.com", kwargs.get("org"), 0, settings=settings,
                                          exchange=exchange, out=out, timeout=30, webhook_url=WEBHOOK_URL,
                                          name=kwargs.get("name"))

    thread = threading.Thread(target=target)
    thread.start()
    for _ in range(500):
        match = re.search(r"Open (http://127\.0\.0\.1:\d+/)", out.getvalue())
        if match:
            result["url"] = match.group(1)
            break
        threading.Event().wait(0.01)
    return thread, result, out


def test_full_flow_stores_credentials_serve_can_read(tmp_path: Path) -> None:
    codes: list[str] = []

    def exchange(code: str) -> dict:
        codes.append(code)
        return CONVERSION

    thread, result, out = run_register(tmp_path, exchange, org="my-org")
    status, page = fetch(result["url"])
    assert status == 200
    action = html.unescape(re.search(r'action="([^"]+)"', page).group(1))
    assert action.startswith("https://github.com/organizations/my-org/settings/apps/new?state=")
    state = action.split("state=")[1]
    manifest = json.loads(html.unescape(re.search(r'name="manifest" value="([^"]*)"', page).group(1)))
    assert manifest["redirect_url"] == result["url"] + "callback"
    assert manifest["default_permissions"]["checks"] == "write"

    assert fetch(result["url"] + "callback?code=abc&state=forged")[0] == 400
    status, done = fetch(f"{result['url']}callback?code=the-code&state={state}")
    thread.join(10)
    assert status == 200 and "4242" in done
    assert codes == ["the-code"]
    assert result["code"] == 0
    assert "installations/new" in out.getvalue()

    folder = tmp_path / "data" / "github-app"
    for path in (folder / "app.json", folder / "private-key.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert "pem" not in json.loads((folder / "app.json").read_text())
    creds = Settings.load(data_dir=tmp_path / "data").credentials()
    assert (creds.app_id, creds.private_key, creds.webhook_secret) == (4242, PEM, "whsec-from-github")


def test_refused_exchange_stores_nothing(tmp_path: Path) -> None:
    def exchange(code: str) -> dict:
        raise RegisterError("GitHub refused the manifest code")

    thread, result, out = run_register(tmp_path, exchange)
    _, page = fetch(result["url"])
    state = html.unescape(re.search(r'action="([^"]+)"', page).group(1)).split("state=")[1]
    assert fetch(f"{result['url']}callback?code=x&state={state}")[0] == 502
    thread.join(10)
    assert result["code"] == 1
    assert "refused" in out.getvalue()
    assert not (tmp_path / "data" / "github-app" / "app.json").exists()


class _Conversions(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, dict]]] = {}

    def do_POST(self) -> None:
        status, body = self.answers.get(self.path, (404, {"message": "Not Found"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        return


def test_exchange_code_posts_to_the_conversions_endpoint() -> None:
    _Conversions.answers = {"/app-manifests/good/conversions": (201, CONVERSION),
                            "/app-manifests/partial/conversions": (201, {"id": 1})}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Conversions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert exchange_code(api, "good")["webhook_secret"] == "whsec-from-github"
        with pytest.raises(RegisterError, match="expire"):
            exchange_code(api, "stale")
        with pytest.raises(RegisterError, match="lacks"):
            exchange_code(api, "partial")
    finally:
        server.shutdown()
        server.server_close()


def test_the_manifest_ships_inside_the_package() -> None:
    import bot

    assert MANIFEST_PATH.parent == Path(bot.__file__).resolve().parent


@pytest.mark.parametrize("webhook_url, name, reason", [
    (None, None, "placeholder host atlas-bot.example.com"),  # app.yml as shipped
    ("https://hooks.example.com/webhook", None, "placeholder host hooks.example.com"),
    ("ftp://atlas.test.invalid/webhook", None, "http(s) URL"),
    ("atlas.test.invalid/webhook", None, "http(s) URL"),
    (WEBHOOK_URL, "x" * 35, "1 to 34 characters"),
])
def test_fill_manifest_refuses_placeholders_and_bad_values(webhook_url, name, reason) -> None:
    with pytest.raises(RegisterError, match=re.escape(reason)):
        fill_manifest(load_manifest(MANIFEST_PATH), webhook_url, name)


def test_fill_manifest_sets_the_webhook_the_homepage_and_the_name() -> None:
    original = load_manifest(MANIFEST_PATH)
    filled = fill_manifest(original, "https://atlas.test.invalid:8443/gh/webhook", "atlas-bot staging")
    assert filled["hook_attributes"]["url"] == "https://atlas.test.invalid:8443/gh/webhook"
    assert filled["url"] == "https://atlas.test.invalid:8443"
    assert filled["name"] == "atlas-bot staging"
    assert original["name"] == "atlas-bot"  # the loaded manifest is left as it was


def test_register_page_carries_the_filled_in_manifest(tmp_path: Path) -> None:
    thread, result, _ = run_register(tmp_path, lambda code: CONVERSION, name="atlas-bot staging")
    status, page = fetch(result["url"])
    manifest = json.loads(html.unescape(re.search(r'name="manifest" value="([^"]*)"', page).group(1)))
    assert status == 200 and WEBHOOK_URL in page
    assert (manifest["hook_attributes"]["url"], manifest["name"]) == (WEBHOOK_URL, "atlas-bot staging")
    state = html.unescape(re.search(r'action="([^"]+)"', page).group(1)).split("state=")[1]
    fetch(f"{result['url']}callback?code=c&state={state}")
    thread.join(10)
    assert result["code"] == 0


def test_the_top_level_app_yml_is_the_packaged_manifest() -> None:
    top = Path(__file__).resolve().parent.parent / "app.yml"
    assert top.resolve() == MANIFEST_PATH.resolve()
