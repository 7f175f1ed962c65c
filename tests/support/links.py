"""Links every door must refuse or accept (issue 12, item 7; rules in core/links.py), with the
default settings: schemes chuong-portal and chuong-tracking, https to dangcongsan.vn and its
subdomains."""

from __future__ import annotations

UNSAFE_LINKS: dict[str, str] = {
    "javascript": "javascript:alert(document.cookie)",
    "javascript-slashes": "javascript://dangcongsan.vn/%0aalert(1)",
    "mixed-case-javascript": "JaVaScRiPt:alert(1)",
    "data": "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript": "vbscript:msgbox(1)",
    "file": "file:///etc/passwd",
    "http-not-https": "http://dangcongsan.vn/tin/1",
    "https-other-host": "https://evil.example/tin/1",
    "https-look-alike-suffix": "https://dangcongsan.vn.evil.example/tin/1",
    "https-look-alike-prefix": "https://evildangcongsan.vn/tin/1",
    "userinfo": "https://dangcongsan.vn@evil.example/tin/1",
    "userinfo-with-password": "https://dangcongsan.vn:x@evil.example/",
    "port": "https://dangcongsan.vn:8443/tin/1",
    "backslash": "https://evil.example\\@dangcongsan.vn/",
    "leading-space": " chuong-portal://article/1",
    "leading-tab": "\tchuong-portal://article/1",
    "inner-newline": "chuong-portal://article/1\njavascript:alert(1)",
    "percent-encoded-scheme": "%6Aavascript:alert(1)",
    "percent-encoded-host": "https://dangcongsan%2Evn/tin/1",
    "percent-encoded-slash-in-host": "https://evil.example%2F.dangcongsan.vn/",
    "idn-host": "https://đangcongsan.vn/tin/1",
    "punycode-host": "https://xn--angcongsan-0ub.vn/tin/1",
    "unknown-app-scheme": "otherapp://article/1",
    "no-screen": "chuong-portal://",
    "no-slashes": "chuong-portal:article/1",
}

SAFE_LINKS: dict[str, str] = {
    "portal-scheme": "chuong-portal://article/2026-11-22-nq57",
    "tracking-scheme": "chuong-tracking://tasks/012_TBKL_NQ57?tab=report",
    "https-host": "https://dangcongsan.vn/thoi-su/nq57.html",
    "https-subdomain": "https://tulieuvankien.dangcongsan.vn/van-kien?id=1#p2",
    "percent-encoded-path": "https://dangcongsan.vn/tin%20m%E1%BB%9Bi",
}
