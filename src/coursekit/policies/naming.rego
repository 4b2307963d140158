# Brightcart global policy: names and identifiers, so that data products read and join alike.
#
# Input: one ODCS v3 data contract. Output: `deny`, a set of {"where", "msg"} objects.
#
# - The contract's id is urn:brightcart:<domain>:<product>, with the contract's own domain.
# - Tables and columns are snake_case.
# - A table's single-column primary key ends in _id (the parts of a composite key, such as an
#   order line's line_number, need not); a column ending in _id is an identifier, and identifiers
#   are declared strings (Brightcart's are, everywhere: O7-000123, C00042).
# - Timestamps end in _at, and only timestamps do; dates end in _date.
# The rules apply to a table's columns (its top-level properties), not to the fields nested in
# them. A column marked `deprecated: true` keeps its old name until a major version drops it.
#
# Messages are built with concat, not sprintf (see classification.rego).
package brightcart.naming

import rego.v1

snake_case := `^[a-z][a-z0-9]*(_[a-z0-9]+)*$`

urn := `^urn:brightcart:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$`

text(value) := value if is_string(value)

text(value) := json.marshal(value) if not is_string(value)

deny contains {"where": "contract", "msg": msg} if {
	not input.id
	msg := "has no id: give it urn:brightcart:<domain>:<product>"
}

deny contains {"where": "contract", "msg": msg} if {
	input.id
	not regex.match(urn, text(input.id))
	msg := concat("", ["id ", text(input.id), " is not urn:brightcart:<domain>:<product> in snake_case"])
}

deny contains {"where": "contract", "msg": msg} if {
	not input.domain
	msg := "has no domain: name the domain that owns it (the second part of its id)"
}

deny contains {"where": "contract", "msg": msg} if {
	regex.match(urn, text(input.id))
	part := split(input.id, ":")[2]
	input.domain
	part != input.domain
	msg := concat("", ["id ", input.id, " names the domain ", part, ", which is not the contract's domain ", text(input.domain)])
}

deny contains {"where": table.name, "msg": "is not snake_case (lower-case words joined by _)"} if {
	some table in input.schema
	not regex.match(snake_case, table.name)
}

# the columns the naming rules apply to: [table name, column], for every column not on its way out
named contains [table.name, column] if {
	some table in input.schema
	some column in table.properties
	not column.deprecated
}

# the tables whose primary key is a single column
single_key contains table.name if {
	some table in input.schema
	count([column | some column in table.properties; column.primaryKey == true]) == 1
}

logical_type(column) := object.get(column, "logicalType", "declared without a logicalType")

deny contains {"where": concat(".", [table, column.name]), "msg": "is not snake_case (lower-case words joined by _)"} if {
	some [table, column] in named
	not regex.match(snake_case, column.name)
}

deny contains {"where": concat(".", [table, column.name]), "msg": "is a primary key: identifiers end in _id"} if {
	some [table, column] in named
	column.primaryKey == true
	table in single_key
	not endswith(column.name, "_id")
}

deny contains {"where": concat(".", [table, column.name]), "msg": msg} if {
	some [table, column] in named
	endswith(column.name, "_id")
	logical_type(column) != "string"
	msg := concat("", ["ends in _id, so it is an identifier, and identifiers are logicalType string; it is ", text(logical_type(column))])
}

deny contains {"where": concat(".", [table, column.name]), "msg": "is a timestamp: timestamps end in _at"} if {
	some [table, column] in named
	column.logicalType == "timestamp"
	not endswith(column.name, "_at")
}

deny contains {"where": concat(".", [table, column.name]), "msg": msg} if {
	some [table, column] in named
	endswith(column.name, "_at")
	logical_type(column) != "timestamp"
	msg := concat("", ["ends in _at, which means a timestamp (logicalType timestamp), but it is ", text(logical_type(column))])
}

deny contains {"where": concat(".", [table, column.name]), "msg": "is a date: dates end in _date"} if {
	some [table, column] in named
	column.logicalType == "date"
	not endswith(column.name, "_date")
}
