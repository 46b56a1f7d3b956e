# RUN: succeeded
# Valid device ids that hold the query language's quote, brackets and
# operators. hubflow quotes each one in the deviceId IN [...] queries it
# sends, so exactly these devices are patched: none of the decoys the test
# registers ("x", "it", "quote", ...) and not the one that does not exist,
# which is recorded as skipped.

job "quoted" {
  target {
    devices = [
      "quote'd",
      "it's'",
      "x')OR('1'='1",
      "x';DROP",
      "'",
      "''",
      "%27",
      "50%",
      "a*",
      "?",
      "$where",
      "(x)",
      "a,b",
      "key=value",
      "@home;#1",
      "ghost'",
    ]
  }
  step "mark" {
    desired = { quoted = "yes" }
    success = try(desired.quoted, "") == "yes"
    timeout = "30s"
  }
}
