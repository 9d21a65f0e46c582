"""The web management UI's static files, as the management port serves
them (server/mgmt_ui.c): the index at / and /index.html, every module the
UI imports, with the right Content-Type, a strong ETag and 304 on
If-None-Match, HEAD, nosniff and a Content-Security-Policy without inline
script; no login needed for the files while the API still asks for one;
unknown paths, other methods and encoded slashes refused.

Warren's own UI, so Warren only. test/ui/test_ui.py drives the UI itself
in a browser.
"""

import http.client
import posixpath
import re

import pytest

import conftest
from test_20_mgmt_api import MGMT_CONF, http_port

pytestmark = pytest.mark.warren_only

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    b = conftest.new_warren(str(tmp_path_factory.mktemp("ui")), MGMT_CONF)
    yield http_port(b)
    conftest.stop_checked(b)


def fetch(port, path, method="GET", headers=None):
    """(status, {lower-case header: value}, body) of one request."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def assert_ui_headers(h, ctype):
    assert h["content-type"] == ctype
    assert h["cache-control"] == "no-cache"
    assert h["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]{20}"', h["etag"]), h["etag"]
    csp = h["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def ui_files(port):
    """Every file the UI loads: index.html's links, then the JS import
    graph from js/app.js. Returns {path: (headers, body)}."""
    seen = {}
    todo = ["index.html"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        status, h, body = fetch(port, "/" + path)
        assert status == 200, (path, status, body[:200])
        seen[path] = (h, body)
        text = body.decode("utf-8")
        if path.endswith(".html"):
            refs = re.findall(r'(?:src|href)="([^"#:]+)"', text)
        elif path.endswith(".js"):
            refs = [posixpath.join(posixpath.dirname(path), r)
                    for r in re.findall(r'from "(\.[^"]+)"', text)]
        else:
            refs = []
        todo += [posixpath.normpath(r) for r in refs]
    return seen


def test_index_and_every_module_served_with_headers(port):
    files = ui_files(port)
    assert {"index.html", "favicon.svg", "css/warren.css", "js/app.js",
            "js/api.js", "js/pages/queue.js"} <= set(files)
    for path, (h, body) in files.items():
        assert_ui_headers(h, TYPES[posixpath.splitext(path)[1]])
        assert int(h["content-length"]) == len(body) > 0
    # no inline script or style anywhere in the page
    index = files["index.html"][1].decode()
    assert '<script type="module" src="js/app.js"></script>' in index
    assert not re.search(r"<script(?![^>]*\bsrc=)", index)
    assert " style=" not in index and "<style" not in index
    # / is index.html, same ETag
    status, h, body = fetch(port, "/")
    assert status == 200 and body == files["index.html"][1]
    assert h["etag"] == files["index.html"][0]["etag"]
    # distinct files, distinct ETags
    etags = [h["etag"] for h, _ in files.values()]
    assert len(set(etags)) == len(etags)


def test_etag_revalidation_304(port):
    status, h, body = fetch(port, "/js/app.js")
    etag = h["etag"]
    for inm in (etag, "W/" + etag, '"nope", ' + etag, "*"):
        status, h304, body = fetch(port, "/js/app.js",
                                   headers={"If-None-Match": inm})
        assert status == 304, inm
        assert body == b""
        assert h304["etag"] == etag
        assert h304["cache-control"] == "no-cache"
        assert "content-type" not in h304
    for inm in ('"nope"', etag[:-2] + '"', ""):
        status, _, body = fetch(port, "/js/app.js",
                                headers={"If-None-Match": inm})
        assert status == 200 and body, inm
    # the ETag of one file does not validate another
    status, _, _ = fetch(port, "/js/api.js", headers={"If-None-Match": etag})
    assert status == 200


def test_head(port):
    _, h_get, body = fetch(port, "/index.html")
    status, h, head_body = fetch(port, "/index.html", method="HEAD")
    assert status == 200 and head_body == b""
    assert h["content-length"] == str(len(body))
    assert h["etag"] == h_get["etag"]
    assert_ui_headers(h, TYPES[".html"])


def test_no_login_for_files_but_for_the_api(port):
    bad = {"Authorization": "Basic Z3Vlc3Q6bm9wZQ=="}  # guest:nope
    for headers in ({}, bad):
        status, _, _ = fetch(port, "/css/warren.css", headers=headers)
        assert status == 200
    status, h, body = fetch(port, "/api/overview")
    assert status == 401 and body == b""
    assert h["www-authenticate"] == 'Basic realm="RabbitMQ Management"'
    status, _, body = fetch(port, "/api/overview", headers=bad)
    assert status == 401 and b"Login failed" in body


def test_unknown_paths_and_methods(port):
    for path in ("/nope.html", "/js/nope.js", "/js/", "/js", "/www/index.html",
                 "/js%2Fapp.js", "/api/nope", "/api", "/index.html/x",
                 "/../index.html"):
        status, h, body = fetch(port, path)
        assert status == 404, path
        assert body == b'{"error":"Object Not Found","reason":"Not Found"}'
    for method in ("POST", "PUT", "DELETE"):
        status, h, _ = fetch(port, "/index.html", method=method)
        assert status == 405, method
        assert h["allow"] == "GET, HEAD"


def test_offline_nothing_fetched_from_elsewhere(port):
    # The UI works without a network: every file it loads comes from the
    # broker (relative links only), and the policy lets the browser fetch
    # scripts, styles, images and API calls from this origin only.
    files = ui_files(port)
    assert len(files) > 10
    for path, (h, body) in files.items():
        text = body.decode("utf-8")
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        # a URL with a host: http://x.y, https://x.y or //x.y
        m = re.search(r"(?i)(https?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+", text)
        assert m is None, (path, m.group(0))
        assert "@import" not in text and "url(http" not in text, path
        csp = h["content-security-policy"]
        for directive in ("script-src 'self'", "style-src 'self'",
                          "img-src 'self'", "connect-src 'self'"):
            assert directive in csp, (path, csp)
