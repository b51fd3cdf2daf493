"""``/api/v1/docs``: the OpenAPI document as one self-contained HTML page (no script, no CDN)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from bot.api.problems import kinds, type_uri

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:0}code,pre{font:13px ui-monospace,monospace;background:#f4f4f4;border-radius:4px}
pre{padding:.6rem;overflow:auto}section.op{border-top:1px solid #ddd;padding-top:.6rem;margin-top:1rem}
.m{display:inline-block;min-width:4rem;font-weight:700}.GET{color:#06c}.POST{color:#080}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
details summary{cursor:pointer}
"""


def render(doc: dict[str, Any]) -> str:
    """The page for an OpenAPI document."""
    info = doc["info"]
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>{escape(info['title'])}</title><style>{STYLE}</style>",
        f"<h1>{escape(info['title'])}</h1><p>{escape(info['description'])}</p>",
        '<p>The machine-readable document: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> '
        "(OpenAPI 3.1).</p>",
        "<h2>Try it</h2><pre>"
        + escape(
            "TOKEN=$(switchboard tokens create --name ci --scope runs:read,runs:write --as user:ci)\n"
            'curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/v1/workflows\n'
            'curl -s -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $(uuidgen)" \\\n'
            "  -H 'Content-Type: application/json' \\\n"
            '  -d \'{"workflow": "deploy", "inputs": {"service": "api"}}\' \\\n'
            "  http://127.0.0.1:8080/api/v1/runs\n"
            'curl -N -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/v1/runs/RUN/events'
        )
        + "</pre>",
        "<h2>Endpoints</h2>",
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts.append(_operation(path, method.upper(), op))
    parts.append(
        "<h2 id=problems>Problems</h2><p>Every error is <code>application/problem+json</code> "
        "(RFC 9457): <code>type</code>, <code>title</code>, <code>status</code> and a <code>detail</code> "
        "saying what to do, the same words chat uses; <code>errors</code> lists refused fields.</p><table>"
        "<tr><th>status</th><th>type</th><th>meaning</th></tr>"
    )
    for status, slug, title in kinds():
        uri = type_uri(slug)
        parts.append(
            f"<tr id=problem-{slug}><td>{status}</td><td><code>{escape(uri)}</code></td>"
            f"<td>{escape(title)}</td></tr>"
        )
    parts.append("</table><h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(
            f"<details id=schema-{escape(name)}><summary><code>{escape(name)}</code></summary>"
            f"<pre>{escape(json.dumps(schema, indent=2))}</pre></details>"
        )
    return "".join(parts) + "</html>"


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    rows = [
        f"<section class=op id={escape(op['operationId'])}><h3><span class='m {method}'>{method}</span> "
        f"<code>{escape(path)}</code></h3><p>{escape(op['summary'])}</p>"
    ]
    if op.get("description"):
        rows.append(f"<p>{escape(op['description'])}</p>")
    params = op.get("parameters", [])
    if params:
        rows.append("<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>")
        for p in params:
            rows.append(
                f"<tr><td><code>{escape(p['name'])}</code>{' (required)' if p.get('required') else ''}</td>"
                f"<td>{escape(p['in'])}</td><td><code>{escape(json.dumps(p['schema']))}</code></td></tr>"
            )
        rows.append("</table>")
    body = op.get("requestBody")
    if body:
        types = ", ".join(body["content"])
        rows.append(f"<p>Body ({escape(types)}): {_refs(body['content'])}</p>")
    statuses = ", ".join(
        f"{code} {_refs(r.get('content', {}))}".strip() for code, r in op["responses"].items()
    )
    rows.append(f"<p>Answers: {statuses}</p></section>")
    return "".join(rows)


def _refs(content: dict[str, Any]) -> str:
    names = []
    for media in content.values():
        ref = media.get("schema", {}).get("$ref", "")
        if ref:
            name = ref.rpartition("/")[2]
            names.append(f"<a href=#schema-{escape(name)}>{escape(name)}</a>")
    return ", ".join(names)
