# Brightcart global policy: a new version of a contract must not break its consumers without a new
# major version.
#
# Input: {"old": <the published contract>, "new": <the proposed one>} (ODCS v3).
# Output: `breaking`, the breaking changes, and `deny`, the violations: {"where", "msg"} objects.
#
# Breaking, for a column and for every property nested in one (an object's fields, an array's
# items): dropped (a table too); a declared logicalType or physicalType changed or no longer
# declared; added as required to what already exists (rows already published do not have it);
# `required` changed (to false, consumers lose a guarantee; to true, published rows may hold nulls).
# A breaking change needs a higher major version; any change needs a higher version.
#
# Versions are compared by their numbers, not with semver.compare: in rego-cpp (regopy 1.5.2)
# semver.compare("2.0.0", "1.5.0") is -1, where OPA says 1 (its comparison reads the minor version
# whatever the major). Messages are built with concat (see classification.rego).
package brightcart.compatibility

import rego.v1

semver := `^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`

text(value) := value if is_string(value)

text(value) := json.marshal(value) if not is_string(value)

numbers(version) := [to_number(part) | some part in split(version, ".")] if {
	is_string(version)
	regex.match(semver, version)
}

newer(a, b) if a[0] > b[0]

newer(a, b) if {
	a[0] == b[0]
	a[1] > b[1]
}

newer(a, b) if {
	a[0] == b[0]
	a[1] == b[1]
	a[2] > b[2]
}

old_version := numbers(input.old.version)

new_version := numbers(input.new.version)

tables(contract) := {table.name: table | some table in object.get(contract, "schema", [])}

# every field of a table, at any depth: {label: {"parent": label or "", "prop": property}}, where a
# column is labelled by its name and a nested property by its path: lines[].product_id (an array's
# items), buyer.email (an object's property), notes{value} (a map's values)
fields(table) := {concat("", steps): {"parent": concat("", array.slice(steps, 0, count(steps) - 1)), "prop": prop} |
	some column in object.get(table, "properties", [])
	some [steps, prop] in entries(column)
}

entries(column) := {[[column.name], column]} if not composite(column)

entries(column) := {[[column.name], column]} | {[steps, prop] |
	composite(column)
	walk(object.filter(column, {"properties", "items", "map"}), [path, prop])
	count(path) > 0
	every segment in path {
		structural(segment)
	}
	is_object(prop)
	path[count(path) - 1] != "map"
	steps := array.concat([column.name], [step |
		some i
		segment := path[i]
		step := segment_label(column, path, i, segment)
		step != ""
	])
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

# the field's parent is in `others` (a column's parent, the table, always is)
parent_in(field, _) if field.parent == ""

parent_in(field, others) if others[field.parent]

# the tables in both versions: [name, fields before, fields after]
kept contains [name, fields(before), fields(tables(input.new)[name])] if {
	some name, before in tables(input.old)
	tables(input.new)[name]
}

breaking contains {"where": name, "msg": "was dropped"} if {
	some name, _ in tables(input.old)
	not tables(input.new)[name]
}

# a field dropped (reported once, where it went: not for the fields nested in a dropped one)
breaking contains {"where": concat(".", [table, label]), "msg": "was dropped"} if {
	some [table, before, after] in kept
	some label, field in before
	not after[label]
	parent_in(field, after)
}

# a type that was declared changed, or is no longer declared (declaring one where there was none
# adds a promise: not breaking)
breaking contains {"where": concat(".", [table, label]), "msg": msg} if {
	some [table, before, after] in kept
	some label, field in before
	old := field.prop
	new := after[label].prop
	some kind in ["logicalType", "physicalType"]
	old[kind]
	object.get(old, kind, "(none)") != object.get(new, kind, "(none)")
	msg := concat("", [
		"changed its ", kind, " from ", text(old[kind]),
		" to ", text(object.get(new, kind, "(none)")),
	])
}

breaking contains {"where": concat(".", [table, label]), "msg": msg} if {
	some [table, before, after] in kept
	some label, field in after
	not before[label]
	parent_in(field, before)
	object.get(field.prop, "required", false) == true
	msg := "was added as required, but the rows already published do not have it"
}

breaking contains {"where": concat(".", [table, label]), "msg": msg} if {
	some [table, before, after] in kept
	some label, field in before
	old := field.prop
	new := after[label].prop
	object.get(old, "required", false) != object.get(new, "required", false)
	msg := concat("", [
		"changed required from ", text(object.get(old, "required", false)),
		" to ", text(object.get(new, "required", false)),
	])
}

deny contains {"where": "contract", "msg": msg} if {
	some side in ["old", "new"]
	not numbers(object.get(input[side], "version", null))
	msg := concat("", ["the ", side, " version ", text(object.get(input[side], "version", null)), " is not MAJOR.MINOR.PATCH"])
}

deny contains {"where": change.where, "msg": msg} if {
	some change in breaking
	new_version[0] <= old_version[0]
	msg := concat("", [
		change.msg, ": a breaking change, which needs a new major version (",
		format_int(old_version[0] + 1, 10), ".0.0), not ", input.new.version,
	])
}

deny contains {"where": "contract", "msg": msg} if {
	object.remove(input.old, ["version"]) != object.remove(input.new, ["version"])
	not newer(new_version, old_version)
	msg := concat("", ["changed, but its version ", input.new.version, " is not higher than ", input.old.version])
}
