"""Brightcart's global policies (lesson 04, Lab 1): what they find in the shipped contracts, the gate, masking."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml

from coursekit import contracts, duck, governance, policy


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(policy.OPA_ENV, raising=False)


@pytest.fixture(scope="module")
def rego() -> policy.Engine:
    return governance.engine()


def wheres(violations: list[dict[str, str]], name: str | None = None) -> set[str]:
    return {v["where"] for v in violations if name is None or v["policy"] == name}


def test_the_shipped_contracts_fail_only_where_lesson_04_says(rego: policy.Engine) -> None:
    found = governance.report(using=rego)
    assert {v["domain"] for v in found} == {"marketing", "customers"}
    marketing = [v for v in found if v["domain"] == "marketing"]
    assert wheres(marketing, "naming") == {"page_views.ts"}
    unclassified = {f"contacts.{c}" for c in ("contact_id", "customer_id", "source", "consent")}
    unclassified |= {f"page_views.{c}" for c in ("customer_id", "session_id", "page", "ts")}
    assert wheres(marketing, "classification") == unclassified | {"contacts.email"}
    email = [v["msg"] for v in marketing if v["where"] == "contacts.email"]
    assert any("its name says" in m and "restricted" in m for m in email), email
    assert any("declares no masking" in m for m in email), email
    customers = [v for v in found if v["domain"] == "customers"]
    assert wheres(customers) == {f"customers.{c}" for c in ("name", "email", "phone", "postcode", "birth_year")}
    assert all("declares no masking" in v["msg"] for v in customers)


def test_personal_data_is_found_by_tag_or_by_name_and_not_by_any_name(rego: policy.Engine) -> None:
    def contract(*columns: dict[str, object]) -> dict[str, object]:
        return {"id": "urn:brightcart:t:t", "domain": "t", "schema": [{"name": "t", "properties": list(columns)}]}

    masked = [{"property": "masking", "value": "redact"}]
    ok = contract({"name": "product_name", "classification": "public"},
                  {"name": "loyalty_card", "classification": "restricted", "tags": ["PII"], "customProperties": masked},
                  {"name": "date_of_birth", "classification": "restricted", "customProperties": masked})
    assert rego.query(governance.query("classification"), ok) == []
    bad = contract({"name": "loyalty_card", "classification": "internal", "tags": ["pii"]},
                   {"name": "home_address", "classification": "restricted",
                    "customProperties": [{"property": "masking", "value": "scramble"}]},
                   {"name": "tier", "classification": 3})
    got = {v["where"]: v["msg"] for v in rego.query(governance.query("classification"), bad)}
    assert set(got) == {"t.loyalty_card", "t.home_address", "t.tier"}
    assert got["t.loyalty_card"].startswith("is personal data (it is tagged pii) but classified internal")
    assert got["t.home_address"].startswith("declares masking scramble, which the platform does not implement")
    assert got["t.tier"].startswith("is classified 3, which is not a Brightcart level")


def test_the_masking_methods_of_the_policy_are_the_platforms(rego: policy.Engine) -> None:
    assert set(rego.query("data.brightcart.classification.masking_methods")) == set(governance.MASKING)
    assert rego.query("data.brightcart.classification.levels") == list(governance.LEVELS)


def test_compatibility_compares_version_numbers_not_strings(rego: policy.Engine) -> None:
    old = contracts.load("fulfilment")
    new = copy.deepcopy(old)
    governance.column(new, "shipments", "items")["physicalType"] = "INTEGER"
    for version, passes in (("1.1.0", False), ("2.0.0", True), ("10.0.0", True), ("0.9.0", False)):
        new["version"] = version
        assert (governance.check(new, old, using=rego) == []) is passes, version
    old["version"], new["version"] = "9.4.0", "10.0.0"
    assert governance.check(new, old, using=rego) == [], "10 > 9 (rego-cpp's semver.compare says otherwise)"
    same = copy.deepcopy(old)
    same["description"]["usage"] = "changed wording"
    assert wheres(governance.check(same, old, using=rego)) == {"contract"}, "a change needs a new version"


def test_breaking_changes(rego: policy.Engine) -> None:
    old = contracts.load("marketing")
    new = copy.deepcopy(old)
    new["version"] = "1.1.0"
    governance.column(new, "page_views", "ts")["name"] = "viewed_at"
    governance.column(new, "contacts", "customer_id")["required"] = True
    new["schema"] = [new["schema"][0], {**new["schema"][1], "name": "visits"}]
    breaking = rego.query("data.brightcart.compatibility.breaking", {"old": old, "new": new})
    assert {b["where"] for b in breaking} == {"page_views", "contacts.customer_id"}
    added = copy.deepcopy(old)
    added["version"] = "1.1.0"
    added["schema"][1]["properties"].append({"name": "viewed_at", "logicalType": "timestamp", "required": False})
    governance.column(added, "page_views", "ts")["deprecated"] = True
    assert rego.query(governance.query("compatibility"), {"old": old, "new": added}) == []


def test_the_gate_exits_non_zero_with_the_violations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(contracts.text("orders"))
    changed = contracts.load("orders")
    changed["version"] = "1.1.0"
    governance.column(changed, "orders", "amount")["physicalType"] = "DECIMAL(10,2)"
    new.write_text(yaml.safe_dump(changed))
    assert governance.main(["check", str(old)]) == 0
    assert governance.main(["check", str(new), "--previous", str(old)]) == 1
    assert "[compatibility] orders.amount changed its physicalType" in capsys.readouterr().out
    assert governance.main(["check", str(tmp_path / "missing.yaml")]) == 2


def test_masking_macros(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSEKIT_HOME", str(tmp_path))
    con = duck.connect(None)
    governance.install_masking(con, salt="s")
    row = con.sql("SELECT mask_email_partial('ada.lovelace@example.com'), mask_last_digits('+44 7700 900123'), "
                  "mask_postcode_area('N12 3AB'), mask_decade(1987), mask_redact('Ada'), mask_redact(NULL), "
                  "mask_hash('a') = mask_hash('a'), mask_hash('a') = sha256('s:a')").fetchone()
    assert row == ("a***@example.com", "***123", "N12", 1980, "***", None, True, True)
    con.close()


# Valid ODCS v3.2.0 contracts written differently from Brightcart's own (Lab 1 grades learners' contracts with
# these policies): nested objects, arrays, maps, a composite key, a category's bare `name`, flags and event times
# about an e-mail address, YAML dates, physicalType and most optional fields absent, no schema at all.
COMPLIANT = {
    "nested": """
apiVersion: v3.2.0
kind: DataContract
id: urn:brightcart:orders:orders
version: 2.1.0
domain: orders
contractCreatedTs: 2026-03-01T09:30:00Z
schema:
  - name: orders
    properties:
      - {name: order_id, logicalType: string, primaryKey: true, required: true, classification: internal}
      - {name: customer_id, logicalType: string, classification: internal}
      - {name: placed_at, logicalType: timestamp, classification: public}
      - {name: delivery_date, logicalType: date, classification: public, examples: [2026-03-02]}
      - {name: email_receipt_sent, logicalType: boolean, classification: internal}
      - {name: receipt_email_sent_at, logicalType: timestamp, classification: internal}
      - name: lines
        logicalType: array
        classification: internal
        items:
          logicalType: object
          properties:
            - {name: product_id, logicalType: string}
            - {name: productName, logicalType: string, classification: public}
            - {name: quantity, logicalType: integer}
      - name: totals
        logicalType: object
        classification: internal
        properties:
          - {name: amount, logicalType: number}
          - {name: currency, logicalType: string}
""",
    "composite key": """
apiVersion: v3.2.0
kind: DataContract
id: urn:brightcart:orders:order_lines
version: 1.0.0
domain: orders
name: Order lines
schema:
  - name: order_lines
    physicalType: table
    properties:
      - {name: order_id, logicalType: string, physicalType: VARCHAR, primaryKey: true, primaryKeyPosition: 1,
         classification: internal}
      - {name: line_number, logicalType: integer, physicalType: INTEGER, primaryKey: true, primaryKeyPosition: 2,
         classification: internal}
      - {name: shipping_address_id, logicalType: string, classification: internal}
  - name: categories
    properties:
      - {name: category_id, logicalType: string, primaryKey: true, classification: public}
      - {name: name, logicalType: string, classification: public}
      - {name: labels, logicalType: array, classification: public, items: {logicalType: string}}
""",
    "personal data done right": """
apiVersion: v3.2.0
kind: DataContract
id: urn:brightcart:customers:contacts
version: 1.0.0
domain: customers
schema:
  - name: contacts
    properties:
      - {name: contact_id, logicalType: string, primaryKey: true, classification: internal}
      - name: email
        logicalType: string
        classification: restricted
        tags: [pii]
        customProperties: [{property: masking, value: hash}]
      - name: buyer
        logicalType: object
        classification: restricted
        customProperties: [{property: masking, value: redact}]
        properties:
          - {name: phone, logicalType: string}
          - {name: segment, logicalType: string, classification: internal}
      - name: preferences
        logicalType: map
        classification: internal
        map: {key: {logicalType: string}, value: {logicalType: boolean}}
      - {name: phone_verified, logicalType: boolean, classification: internal}
""",
    "no schema": """
apiVersion: v3.2.0
kind: DataContract
id: urn:brightcart:payments:refunds
version: 0.1.0
domain: payments
status: draft
""",
}


def odcs_errors(document: object) -> list[str]:
    """What the ODCS v3.2.0 JSON schema (as datacontract-cli bundles it) says is wrong with ``document``."""
    from jsonschema import validators

    text = resources.files("datacontract").joinpath("schemas/odcs-3.2.0.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    validator = validators.validator_for(schema)(schema)
    return [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(document)]


@pytest.mark.parametrize("name", sorted(COMPLIANT))
def test_valid_contracts_written_differently_comply(name: str, rego: policy.Engine) -> None:
    contract = yaml.safe_load(COMPLIANT[name])
    assert odcs_errors(governance.plain(contract)) == []
    assert governance.check(contract, using=rego) == []
    assert governance.check(contract, previous=contract, using=rego) == []


def test_personal_data_nested_in_a_column_makes_the_column_personal(rego: policy.Engine) -> None:
    contract = yaml.safe_load(COMPLIANT["personal data done right"])
    buyer = governance.column(contract, "contacts", "buyer")
    buyer.update(classification="internal", customProperties=[])
    buyer["properties"][1]["classification"] = "secret"
    contract["schema"][0]["properties"].append(
        {"name": "recipients", "logicalType": "array", "classification": "restricted",
         "items": {"logicalType": "string", "tags": ["pii"]}})
    assert odcs_errors(contract) == []
    got = {(v["where"], v["msg"].split(":")[0]) for v in governance.check(contract, using=rego)}
    assert got == {
        ("contacts.buyer", "is personal data (it holds buyer.phone, which is personal data) but classified internal"),
        ("contacts.buyer", "is personal data (it holds buyer.phone, which is personal data) and declares no masking"),
        ("contacts.buyer.segment", "is classified secret, which is not a Brightcart level (public, internal, "
                                   "confidential, restricted)"),
        ("contacts.recipients", "is personal data (it holds recipients[], which is personal data) and declares no "
                                "masking"),
    }


def test_naming_keys_domains_and_undeclared_types(rego: policy.Engine) -> None:
    contract = yaml.safe_load(COMPLIANT["composite key"])
    del contract["domain"]
    contract["schema"][1]["properties"][0]["name"] = "category"   # a single-column key that does not end in _id
    del governance.column(contract, "order_lines", "shipping_address_id")["logicalType"]
    got = {v["where"]: v["msg"] for v in rego.query(governance.query("naming"), contract)}
    assert set(got) == {"contract", "categories.category", "order_lines.shipping_address_id"}
    assert got["contract"].startswith("has no domain")
    assert got["order_lines.shipping_address_id"].endswith("it is declared without a logicalType")


def test_compatibility_looks_into_nested_properties(rego: policy.Engine) -> None:
    old = yaml.safe_load(COMPLIANT["nested"])
    new = copy.deepcopy(old)
    new["version"] = "2.2.0"
    lines = governance.column(new, "orders", "lines")["items"]["properties"]
    lines[0]["logicalType"] = "integer"                                   # a nested type changed
    del lines[1]                                                          # a nested field dropped
    lines.append({"name": "discount", "logicalType": "number", "required": True})   # added as required
    totals = governance.column(new, "orders", "totals")
    totals["properties"][0]["physicalType"] = "DECIMAL(10,2)"            # a type declared where none was
    totals["properties"].append({"name": "tax", "logicalType": "number"})  # an optional field added
    breaking = {(b["where"], b["msg"]) for b in rego.query("data.brightcart.compatibility.breaking",
                                                           governance.plain({"old": old, "new": new}))}
    assert breaking == {
        ("orders.lines[].product_id", "changed its logicalType from string to integer"),
        ("orders.lines[].productName", "was dropped"),
        ("orders.lines[].discount", "was added as required, but the rows already published do not have it"),
    }
    dropped = copy.deepcopy(old)
    dropped["version"] = "3.0.0"
    dropped["schema"][0]["properties"] = [c for c in dropped["schema"][0]["properties"] if c["name"] != "lines"]
    assert rego.query("data.brightcart.compatibility.breaking", governance.plain({"old": old, "new": dropped})) == [
        {"where": "orders.lines", "msg": "was dropped"}], "a dropped column is reported once, not per nested field"
    assert governance.check(dropped, old, using=rego) == []


def test_contracts_with_yaml_dates_reach_the_engine_as_strings() -> None:
    contract = yaml.safe_load(COMPLIANT["nested"])
    plain = governance.plain(contract)
    assert plain["contractCreatedTs"] == "2026-03-01T09:30:00+00:00"
    assert governance.column(plain, "orders", "delivery_date")["examples"] == ["2026-03-02"]
    with pytest.raises(TypeError, match="JSON cannot represent"):
        governance.plain({"id": object()})


OPA = shutil.which("opa") or next((p for p in ("/tmp/opa-bin/opa",) if Path(p).exists()), None)


@pytest.mark.skipif(OPA is None, reason="no `opa` binary (go install github.com/open-policy-agent/opa@v1.x)")
def test_opa_agrees_with_rego_cpp(tmp_path: Path, rego: policy.Engine) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for name, source in governance.sources().items():
        (policies / f"{name}.rego").write_text(source)
    strict = subprocess.run([str(OPA), "check", "--strict", str(policies)], capture_output=True, text=True)
    assert strict.returncode == 0, strict.stdout + strict.stderr
    old = contracts.load("marketing")
    new = copy.deepcopy(old)
    new["version"] = "1.1.0"
    governance.column(new, "page_views", "ts")["name"] = "viewed_at"
    variants = [*contracts.all_contracts().values(), *(yaml.safe_load(text) for text in COMPLIANT.values())]
    nested = yaml.safe_load(COMPLIANT["personal data done right"])
    governance.column(nested, "contacts", "buyer").update(classification="internal", customProperties=[])
    variants.append(nested)
    cases = [(governance.query(n), governance.plain(c)) for c in variants for n in governance.PER_CONTRACT]
    cases.append((governance.query("compatibility"), {"old": old, "new": new}))
    reshaped = yaml.safe_load(COMPLIANT["nested"])
    lines = governance.column(reshaped, "orders", "lines")["items"]["properties"]
    lines[0]["logicalType"] = "integer"
    del lines[1]
    cases.append((governance.query("compatibility"),
                  governance.plain({"old": yaml.safe_load(COMPLIANT["nested"]), "new": reshaped})))
    for query, document in cases:
        (tmp_path / "input.json").write_text(json.dumps(document))
        run = subprocess.run([str(OPA), "eval", "-f", "json", "-d", str(policies), "-i", str(tmp_path / "input.json"),
                              query], capture_output=True, text=True, check=True)
        expected = json.loads(run.stdout)["result"][0]["expressions"][0]["value"]
        def canonical(found: list[dict[str, str]]) -> list[str]:
            return sorted(json.dumps(v, sort_keys=True) for v in found)

        assert canonical(rego.query(query, document)) == canonical(expected), query
