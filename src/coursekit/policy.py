"""Policies as code: Rego evaluated in-process by rego-cpp, or by your Open Policy Agent server.

::

    from coursekit import policy
    engine = policy.Engine({"pii": open("pii.rego").read()})
    engine.query("data.brightcart.pii.deny", {"schema": [...]})   # -> a Python value

By default policies run in this process through ``regopy`` (Microsoft's rego-cpp, Rego v1, no
server). ``COURSEKIT_OPA_URL`` (e.g. ``http://localhost:8181``) sends the same modules and queries
to an Open Policy Agent server through its REST API instead (``PUT /v1/policies/<id>``,
``POST /v1/data/<path>``); give it an OPA of your own, since uploading policies replaces modules
of the same id.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from typing import Any

from coursekit import naming

OPA_ENV = "COURSEKIT_OPA_URL"
# rego-cpp's allocator (snmalloc) reserves a 256 GiB page map when regopy loads; under a smaller
# RLIMIT_DATA or RLIMIT_AS (the grading kernel's memory cap) it aborts the process ("Failed to
# initialise snmalloc"), so the limit is checked first
_RESERVATION = 257 << 30
_QUERY = re.compile(r"^data(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class PolicyError(ValueError):
    """A policy that does not parse or compile, or a query that cannot be answered."""


def opa_url() -> str | None:
    """The OPA server in use (``$COURSEKIT_OPA_URL``), or ``None`` for the in-process engine."""
    url = os.environ.get(OPA_ENV, "").strip().rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        raise PolicyError(f"{OPA_ENV}={url!r}: give the server's http:// or https:// address, e.g. http://localhost:8181")
    return url or None


def unavailable() -> str | None:
    """Why policies cannot be evaluated in this process, or ``None`` when they can.

    In-process Rego needs room for rego-cpp's address-space reservation: a process capped below it (the
    grading kernel, ``ulimit -v``) would abort on loading regopy. An OPA server (``COURSEKIT_OPA_URL``)
    has no such need.
    """
    if opa_url():
        return None
    import resource

    for name in ("RLIMIT_DATA", "RLIMIT_AS"):
        soft, _ = resource.getrlimit(getattr(resource, name))
        if soft != resource.RLIM_INFINITY and soft < _RESERVATION:
            return (f"the in-process policy engine (rego-cpp) reserves 256 GiB of address space when it loads, "
                    f"and this process's {name} is {soft >> 20} MiB (a memory-capped kernel, like the grader's): "
                    f"evaluate the policies in a process without that limit, or on an OPA server ({OPA_ENV})")
    return None


class Engine:
    """A set of Rego modules (``{name: source}``) to query with different inputs."""

    def __init__(self, modules: dict[str, str], data: dict[str, Any] | None = None) -> None:
        if not modules:
            raise PolicyError("give at least one Rego module: {'name': 'package ...'}")
        self.modules = dict(modules)
        self.data = data or {}
        self.url = opa_url()
        if self.url:
            self._upload()
        else:
            self._compile()

    # -- in process ---------------------------------------------------------------------------
    def _interpreter(self) -> Any:
        if (reason := unavailable()) is not None:
            raise PolicyError(reason)
        from regopy import Interpreter, RegoError

        rego = Interpreter()
        for name, source in self.modules.items():
            try:
                rego.add_module(name, source)
            except RegoError as error:
                raise PolicyError(f"policy {name!r} does not parse: {_first_error(str(error), self.modules)}") from None
        if self.data:
            rego.add_data(self.data)
        return rego

    def _compile(self) -> None:
        rego = self._interpreter()
        rego.set_input({})
        self._run(rego, "data")

    def _run(self, rego: Any, query: str) -> Any:
        from regopy import RegoError

        try:
            output = rego.query(query)
        except RegoError as error:
            raise PolicyError(f"the policies do not compile: {_first_error(str(error), self.modules)}") from None
        except ValueError as error:  # regopy parses rego-cpp's answer itself, and it may not be JSON
            raise PolicyError(f"the engine's answer to {query} is not valid JSON ({error}): rego-cpp's sprintf "
                              "keeps the quotes of a string a builtin computed; build strings with concat") from None
        text = str(output)
        if text == "undefined":
            return None
        parsed = json.loads(text)
        if "expressions" not in parsed:
            raise PolicyError(f"policy evaluation failed: {text}")
        return parsed["expressions"][0]

    # -- OPA over REST ------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes, content_type: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method,  # noqa: S310
                                         headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http(s) only, see opa_url
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:800]
            raise PolicyError(f"OPA at {self.url} refused {method} {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            raise ConnectionError(f"cannot reach OPA at {self.url} ({error}); start it (opa run --server) "
                                  f"or unset {OPA_ENV} to evaluate in-process") from None

    def _upload(self) -> None:
        for name, source in self.modules.items():
            module_id = naming.namespaced(name, True).replace(".", "/")
            self._request("PUT", f"/v1/policies/{module_id}", source.encode(), "text/plain")
        if self.data:
            raise PolicyError(f"with {OPA_ENV} set, load base data into OPA itself (opa run --server data.json)")

    # -- both ---------------------------------------------------------------------------------
    def query(self, query: str, input: Any = None) -> Any:
        """Evaluate ``query`` (``data.<package>.<rule>``) with ``input``; ``None`` if undefined."""
        if not _QUERY.match(query):
            raise PolicyError(f"query {query!r}: give a reference such as data.brightcart.pii.deny")
        if self.url:
            answer = self._request("POST", "/v1/data/" + query[len("data."):].replace(".", "/"),
                                   json.dumps({"input": input}).encode(), "application/json")
            return answer.get("result")
        rego = self._interpreter()
        rego.set_input(input if input is not None else {})
        return self._run(rego, query)


def _first_error(text: str, modules: dict[str, str]) -> str:
    """The first message of a rego-cpp error tree, with the module, line and column it points at."""
    messages = re.findall(r"\(errormsg \d+:([^)]*)\)", text)
    places = re.findall(r"\(error \d+:([^|]*)\|(\d+)\|", text)
    if not messages:
        return text.strip()[:400]
    if not places or places[0][0] not in modules:
        return messages[0]
    name, offset = places[0][0], int(places[0][1])
    before = modules[name][:offset]
    line, column = before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
    text_line = modules[name].splitlines()[line - 1] if modules[name].splitlines() else ""
    return f"{messages[0]} at {name}:{line}:{column}: {text_line.strip()}"


def evaluate(modules: dict[str, str], query: str, input: Any = None) -> Any:
    """One-shot :meth:`Engine.query`."""
    return Engine(modules).query(query, input)
