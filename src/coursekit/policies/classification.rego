# Brightcart global policy: data classification and personal data (PII).
#
# Input: one ODCS v3 data contract (the parsed YAML). Output: `deny`, a set of
# {"where": "<table>.<column>", "msg": "..."} objects; empty when the contract complies.
#
# 1. Every column (a property of a table) is classified, with one of the federation's levels; a
#    property nested in a column (an object's fields, an array's items) may declare its own level,
#    which must be one of them too.
# 2. A column is personal data when it is tagged `pii`, when its name says so (`pii_words`,
#    `person_names`), or when a property nested in it is either: a safety net for a forgotten tag,
#    not a substitute for it. The name test is narrow on purpose: a flag (boolean), an event time
#    (timestamp) or a key (..._id) about an e-mail address is not the address.
# 3. Personal data is classified `restricted` and declares how it is masked, as the custom
#    property {property: masking, value: <method>} on the column, one of the platform's
#    `masking_methods`.
#
# Messages are built with concat, not sprintf: rego-cpp (regopy 1.5.2) keeps the quotes of a
# string that a builtin computed when sprintf formats it, and its answer is then not valid JSON
# (a related report: microsoft/rego-cpp#201); OPA does not.
package brightcart.classification

import rego.v1

# the federation's classification levels, from least to most sensitive
levels := ["public", "internal", "confidential", "restricted"]

# the masking methods the platform implements (coursekit.governance.MASKING)
masking_methods := {"redact", "hash", "email_partial", "last_digits", "postcode_area", "decade"}

# a word of a property's name (split at "_") that marks personal data
pii_words := {
	"email", "phone", "mobile", "postcode", "zipcode", "address",
	"birth", "birthdate", "birthday", "dob", "iban", "passport", "ssn",
}

# whole names that are a person's name (product_name is not, and neither is a bare name:
# a category or a warehouse has one too)
person_names := {"first_name", "last_name", "full_name", "surname", "given_name", "family_name"}

# logical types that cannot hold personal data of the kinds the names above announce
not_personal_types := {"boolean", "timestamp"}

tagged_pii(prop) if {
	some tag in object.get(prop, "tags", [])
	lower(tag) == "pii"
}

name_of(prop) := lower(object.get(prop, "name", ""))

named_like_pii(prop) if {
	not object.get(prop, "logicalType", "") in not_personal_types
	not endswith(name_of(prop), "_id")
	some word in split(name_of(prop), "_")
	word in pii_words
}

named_like_pii(prop) if name_of(prop) in person_names

pii_itself(prop) if tagged_pii(prop)

pii_itself(prop) if named_like_pii(prop)

# the properties nested in a column, at any depth: [label, property], e.g. ["lines[].email", {...}]
nested(column) := set() if not composite(column)

nested(column) := {[label, prop] |
	composite(column)
	walk(object.filter(column, {"properties", "items", "map"}), [path, prop])
	count(path) > 0
	every segment in path {
		structural(segment)
	}
	is_object(prop)
	path[count(path) - 1] != "map"
	label := concat("", [column.name, concat("", [step |
		some i
		segment := path[i]
		step := segment_label(column, path, i, segment)
	])])
}

# a column with properties nested in it (most are not, and need no walk)
composite(column) if column.properties

composite(column) if column.items

composite(column) if column.map

structural(segment) if is_number(segment)

structural(segment) if segment in {"properties", "items", "map", "key", "value"}

segment_label(column, path, i, segment) := concat("", [".", object.get(column, array.concat(array.slice(path, 0, i + 1), ["name"]), "?")]) if {
	is_number(segment)
}

segment_label(_, _, _, "items") := "[]"

segment_label(_, _, _, "key") := "{key}"

segment_label(_, _, _, "value") := "{value}"

segment_label(_, _, _, segment) := "" if segment in {"properties", "map"}

holds_pii(column) if {
	some [_, prop] in nested(column)
	pii_itself(prop)
}

is_pii(column) if pii_itself(column)

is_pii(column) if holds_pii(column)

why_pii(column) := "it is tagged pii" if {
	tagged_pii(column)
} else := "its name says it is personal data" if {
	named_like_pii(column)
} else := concat("", ["it holds ", label, ", which is personal data"]) if {
	label := min({found |
		some [found, prop] in nested(column)
		pii_itself(prop)
	})
}

# the masking methods a column declares (normally none or one)
maskings(column) := {cp.value |
	some cp in object.get(column, "customProperties", [])
	cp.property == "masking"
}

text(value) := value if is_string(value)

text(value) := json.marshal(value) if not is_string(value)

where(table, column) := concat(".", [table.name, column.name])

level_list := concat(", ", levels)

method_list := concat(", ", sort(masking_methods))

# the contract's personal data, each column once: {"where": "<table>.<column>", "why": ..., "column": ...}
personal contains {"where": where(table, column), "why": why_pii(column), "column": column} if {
	some table in input.schema
	some column in table.properties
	is_pii(column)
}

personal_columns := {p.where | some p in personal}

deny contains {"where": where(table, column), "msg": msg} if {
	some table in input.schema
	some column in table.properties
	not where(table, column) in personal_columns
	not column.classification
	msg := concat("", ["has no classification: classify it ", level_list])
}

deny contains {"where": where(table, column), "msg": msg} if {
	some table in input.schema
	some column in table.properties
	column.classification
	not column.classification in levels
	msg := concat("", ["is classified ", text(column.classification), ", which is not a Brightcart level (", level_list, ")"])
}

deny contains {"where": concat(".", [table.name, label]), "msg": msg} if {
	some table in input.schema
	some column in table.properties
	some [label, prop] in nested(column)
	prop.classification
	not prop.classification in levels
	msg := concat("", ["is classified ", text(prop.classification), ", which is not a Brightcart level (", level_list, ")"])
}

deny contains {"where": p.where, "msg": msg} if {
	some p in personal
	not p.column.classification
	msg := concat("", ["is personal data (", p.why, ") and has no classification: personal data must be classified restricted"])
}

deny contains {"where": p.where, "msg": msg} if {
	some p in personal
	p.column.classification
	p.column.classification != "restricted"
	msg := concat("", ["is personal data (", p.why, ") but classified ", text(p.column.classification), ": personal data must be classified restricted"])
}

deny contains {"where": p.where, "msg": msg} if {
	some p in personal
	count(maskings(p.column)) == 0
	msg := concat("", ["is personal data (", p.why, ") and declares no masking: add the custom property masking, one of ", method_list])
}

deny contains {"where": where(table, column), "msg": msg} if {
	some table in input.schema
	some column in table.properties
	some method in maskings(column)
	not method in masking_methods
	msg := concat("", ["declares masking ", text(method), ", which the platform does not implement (", method_list, ")"])
}

deny contains {"where": where(table, column), "msg": msg} if {
	some table in input.schema
	some column in table.properties
	count(maskings(column)) > 1
	msg := concat("", ["declares ", format_int(count(maskings(column)), 10), " maskings: declare exactly one"])
}
