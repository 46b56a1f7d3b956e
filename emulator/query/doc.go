// Package query implements the IoT Hub query language for the hubflow
// emulator: it parses the text of POST /devices/query and of a job's
// queryCondition, and evaluates it over JSON-decoded twins or device-job
// items. It is pure computation: it owns no documents, does no I/O and
// keeps no state between calls.
//
// The emulator package owns everything around it: storing twins and taking
// a consistent snapshot to pass to Query.Execute, paging the rows with
// x-ms-max-item-count and x-ms-continuation, sending the item type in
// x-ms-item-type, and answering an *Error with 400 ArgumentInvalid.
//
// # Language
//
//	SELECT [TOP n] <* | expr [AS alias], …> FROM <devices | devices.modules | devices.jobs>
//	    [WHERE condition] [GROUP BY path, …]
//
// Keywords, function names and collection names are case-insensitive.
// Expressions are property paths, constants (undefined, null, true, false,
// decimal and 0x numbers, '…' or "…" strings with \' \" \\ \/ \b \f \n \r
// \t \uXXXX escapes, and array constants), the operators + - * / %,
// = != <> < > <= >=, IN / NIN / NOT IN with an array constant, AND, OR,
// NOT, parentheses, and the functions below. Precedence, loosest first:
// OR, AND, NOT, comparisons and IN, + -, * / %, unary - +.
//
// Paths are dotted names (tags.site, properties.reported.fw.version). A
// name that is a keyword (group, order, select, …) or is not a plain
// identifier is escaped as [[name]]: tags.[[group]] or tags[[group]].
// After the first segment, ['name'] and [n] (array index) also work.
// Because [[…]] always means an escaped name, a nested array constant
// holding one plain word must be spaced: [ [1] ].
//
// System names (deviceId, status, connectionState, lastActivityTime,
// version, etag, tags, properties, properties.desired/reported, …, and the
// device-job fields) match case-insensitively and are rewritten to their
// REST spelling, so documents must use that spelling. Keys under tags and
// under properties.desired/reported are case-sensitive, as in twins.
//
// # Evaluation
//
// A document passes WHERE only when the condition is exactly true. A path
// that does not exist is undefined. Comparisons are defined only between
// two primitives of the same type: = and != also on booleans and null
// (null = null), < > <= >= on numbers (as float64) and strings (by byte,
// so case-sensitively). Every other comparison, including any involving
// undefined, objects or arrays, is undefined, so "tags.x != 'a'" and
// "tags.x NIN ['a']" exclude twins without tags.x, and "tags.x != null"
// does not select twins whose tags.x is a string: use IS_DEFINED or
// NOT IS_NULL. IN is true when the value equals an element of the same
// type. AND and OR use three-valued logic (false decides AND, true decides
// OR, otherwise a non-boolean operand gives undefined); NOT of a
// non-boolean is undefined. Arithmetic needs numbers; division or modulo
// by zero and overflow give undefined. + does not concatenate strings.
//
// # Functions
//
// IS_DEFINED(x) and STARTSWITH(s, prefix) / ENDSWITH(s, suffix) are the
// functions the hub documents for twin queries. STARTS_WITH and ENDS_WITH
// are rejected with a message naming the twin-query spelling, as the hub
// does. The package also accepts IS_STRING, IS_NUMBER, IS_BOOL, IS_NULL,
// IS_OBJECT, IS_ARRAY, IS_PRIMITIVE and CONTAINS(s, sub), which the hub
// documents only for message routing; a query that works against the
// emulator with them may fail against a real hub. The string functions are
// undefined unless both operands are strings, and take an optional third
// boolean argument that ignores case.
//
// # Results
//
// SELECT * returns whole documents (item type "Twin", or "DeviceJob" for
// devices.jobs). Any other query returns map[string]any rows (item type
// "Raw"). A column is named by its alias, else by the last name of its
// path in canonical spelling (SELECT DeviceId gives "deviceId",
// properties.reported.fw gives "fw"), else for an aggregate by its
// function name in lower case ("count", "avg", …), else "$n" for the n-th
// select item. Two columns with the same name are an error. Undefined
// values are left out of the row. Numbers, including COUNT, are float64.
//
// COUNT() counts rows and COUNT(x) rows where x is defined; SUM and AVG
// consider only numeric values (SUM of none is 0, AVG of none is left out);
// MIN and MAX consider primitives, ordered null < false < true < numbers <
// strings (none: left out). An aggregate must be a whole select item, never
// part of an expression or of WHERE. Without GROUP BY every select item
// must be an aggregate and the result is one row, even over no documents.
// With GROUP BY, select items must be aggregates or GROUP BY paths; each
// group gives one row, in order of first appearance, holding its selected
// keys and aggregates plus any GROUP BY key not selected, named by its last
// path segment unless that name is taken. Twins where a key is undefined
// form their own group and lack that key. ORDER BY is not supported. TOP
// applies last; without aggregates or GROUP BY, Execute stops reading
// documents once it has TOP rows.
//
// devices.jobs queries allow only SELECT * (with TOP and WHERE), and their
// paths must start with devices.jobs. (devices.jobs.jobId, …).
//
// # Limits
//
// Query text is limited to MaxLength characters and nesting to MaxDepth
// levels; both are reported as *Error, so pathological input cannot
// exhaust the stack.
package query
