# RUN: succeeded
# A payload full of shell, SQL and JSON metacharacters is data: it reaches
# the device's desired properties byte for byte and the history stores it
# as it is.

job "payload" {
  target {
    devices = ["quote'd"]
  }
  step "mark" {
    desired = {
      payload = {
        shell   = "$(rm -rf /); `reboot`; echo $HOME"
        sql     = "'); DROP TABLE runs; --"
        json    = "\"}, \"$version\": 0, \"x\": {\""
        unicode = "héllo ☃ \u202e evil"
      }
    }
    success = try(desired.payload.sql, "") != ""
    timeout = "30s"
  }
}
